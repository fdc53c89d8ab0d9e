"""The operator's status message: edited at most every few seconds, only when it changed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.broadcast import service
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

    from bot.broadcast.models import BroadcastRecipient

    project = make_project(db)
    make_workers(db, 5)
    bid = db.call(service.create, project.id, "hi", runner="r").id
    bot = FakeBot()
    reporter = StatusReporter(bot, _app(db, tmp_path), bid, chat_id=1, message_id=2, lang="en", every=0.3)  # type: ignore[arg-type]
    await reporter.update()
    assert len(bot.edits) == 1 and "Remaining 5" in bot.edits[0]["text"]
    assert bot.edits[0]["reply_markup"] is not None  # the Stop button while it runs
    with db.session() as s:
        s.execute(update(BroadcastRecipient).where(BroadcastRecipient.id == 1).values(status="sent"))
    await reporter.update()  # changed, but too soon
    assert len(bot.edits) == 1
    await asyncio.sleep(0.35)
    await reporter.update()
    assert len(bot.edits) == 2 and "Sent 1" in bot.edits[1]["text"]
    await asyncio.sleep(0.35)
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
