"""The operator's status message: edited at most every few seconds, only when it changed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.broadcast import service
from bot.clock import utcnow
from bot.config import DatabaseSettings, MediaSettings, Settings
from bot.db import Database
from bot.handlers.broadcast_views import duration as _duration
from bot.handlers.broadcast_views import render_status
from bot.i18n import t
from bot.jobs.broadcasts import StatusReporter
from bot.telegram.runtime import App
from tests.broadcast.fakes import make_project, make_workers


class FakeBot:
    def __init__(self) -> None:
        self.edits: list[dict[str, Any]] = []

    async def edit_message_text(self, **kwargs: Any) -> None:
        self.edits.append(kwargs)


def _app(db: Database, tmp_path: Path) -> App:
    settings = Settings(database=DatabaseSettings(DATABASE_URL=db.url), media=MediaSettings(MEDIA_DIR=tmp_path))
    return App(settings=settings, db=db, media_dir=tmp_path)


async def test_status_edits_are_throttled_and_only_on_change(db: Database, tmp_path: Path) -> None:
    from sqlalchemy import update

    from bot.broadcast.models import Broadcast, BroadcastRecipient

    project = make_project(db)
    make_workers(db, 5)
    bid = db.call(service.create, project.id, "hi", runner="r").id
    # The rate is measured over max(1 s, time since the start): a broadcast started a minute
    # ago keeps it, and so the text, the same however slowly this test runs (CI once took
    # over a second for the steps below, the rate changed and so did the text).
    with db.session() as s:
        s.execute(update(Broadcast).where(Broadcast.id == bid).values(started_at=utcnow() - timedelta(minutes=1)))
    clock = [1000.0]  # the reporter's monotonic clock, moved by hand: no sleeps, no timing luck
    bot = FakeBot()
    reporter = StatusReporter(bot, _app(db, tmp_path), bid, chat_id=1, message_id=2, lang="en", every=0.3, clock=lambda: clock[0])  # type: ignore[arg-type]
    await reporter.update()
    assert len(bot.edits) == 1 and "Remaining 5" in bot.edits[0]["text"]
    assert bot.edits[0]["reply_markup"] is not None  # the Stop button while it runs
    with db.session() as s:
        s.execute(update(BroadcastRecipient).where(BroadcastRecipient.id == 1).values(status="sent"))
    clock[0] += 0.29
    await reporter.update()  # changed, but too soon
    assert len(bot.edits) == 1
    clock[0] += 0.02
    await reporter.update()
    assert len(bot.edits) == 2 and "Sent 1" in bot.edits[1]["text"]
    clock[0] += 0.35
    await reporter.update()  # nothing changed: no edit
    assert len(bot.edits) == 2
    db.call(service.cancel, bid)
    await reporter.update(final=True)
    assert len(bot.edits) == 3 and t("broadcast.state_cancelled", "en") in bot.edits[2]["text"]
    assert bot.edits[2]["reply_markup"] is None


def test_render_and_durations(db: Database) -> None:
    project = make_project(db)
    make_workers(db, 3)
    bid = db.call(service.create, project.id, "hi").id
    text = render_status(db.call(service.progress, bid), "ko", 25.0)
    assert f"#{bid}" in text and t("broadcast.state_pending", "ko") in text
    assert [_duration(s) for s in (0, 59, 61, 3599, 3600 * 2 + 60)] == ["0s", "59s", "1m 01s", "59m 59s", "2h 01m"]
