"""End to end through the emulator with flood control on: the operator's /broadcast flow in
Telegram, the bot's background worker delivering at the pace, a blocked worker, the Start
tasks button opening a task, and a queued (--detach) broadcast picked up by the bot."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from bot.broadcast import service
from bot.broadcast.models import Broadcast, BroadcastRecipient, BroadcastStatus, RecipientStatus
from bot.i18n import t
from bot.sandbox import Sandbox, create_sample_project
from bot.simulate import SimWorker
from bot.workers.models import Worker, WorkerStatus

OPERATOR = 4242


def _buttons(message) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    markup = message.reply_markup or {}
    return [(b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row]


async def _newest_with(box: Sandbox, chat: int, predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    def find():  # type: ignore[no-untyped-def]
        for m in reversed(box.emulator.sent_messages(chat)):
            if predicate(m):
                return m
        return None

    return await box.emulator.wait_for(find, timeout=timeout)


async def test_operator_broadcast_in_telegram_with_flood_control(tmp_path: Path) -> None:
    box = await Sandbox.start(tmp_path, flood_control=True, admin_ids=frozenset({OPERATOR}))
    try:
        emu = box.emulator
        project, _ = create_sample_project(box.db, tmp_path / "images", count=4, overlap=2)
        operator = emu.create_user(user_id=OPERATOR, first_name="Op", language_code="en")
        sims = [SimWorker.create(emu, f"w{i}", "ko") for i in range(8)]
        for sim in sims:
            await sim.start()
        blocker = sims[3]
        emu.block(blocker.user_id)

        # a worker's /broadcast is not an operator command: no broadcast UI for them
        await emu.send_text(sims[0].user_id, "/broadcast")
        await asyncio.sleep(0.3)
        assert not any("📣" in (m.text or "") for m in emu.sent_messages(sims[0].user_id))

        await emu.send_text(OPERATOR, "/broadcast")
        pick = await _newest_with(box, OPERATOR, lambda m: any(d.startswith("bc:p:") for _, d in _buttons(m)))
        await emu.tap(OPERATOR, pick.message_id, data=f"bc:p:{project.id}")
        aud = await _newest_with(box, OPERATOR, lambda m: any(d.startswith("bc:a:") for _, d in _buttons(m)))
        await emu.tap(OPERATOR, aud.message_id, text=t("broadcast.audience_all", "en"))
        await _newest_with(box, OPERATOR, lambda m: (m.text or "") == t("broadcast.ask_content", "en"))

        # too long first: a clear error, and the flow still waits for content
        await emu.send_text(OPERATOR, "x" * 4097)
        await _newest_with(box, OPERATOR, lambda m: (m.text or "").startswith("⚠️"))
        await asyncio.sleep(2)  # a person types: stay within Telegram's per-chat limit
        await emu.send_text(OPERATOR, "New shapes to label!")
        confirm = await _newest_with(box, OPERATOR, lambda m: any(d == "bc:ok:0" for _, d in _buttons(m)))
        preview = [m for m in emu.sent_messages(OPERATOR) if m.text == "New shapes to label!"]
        assert preview and _buttons(preview[-1]) == [(t("broadcast.start_button", "en"), f"go:{project.id}")]
        assert t("broadcast.preview", "en", count=9, audience=t("broadcast.audience_all", "en")) == confirm.text
        with box.db.session() as s:
            assert s.execute(select(Broadcast)).first() is None  # nothing before the confirmation
        await emu.tap(OPERATOR, confirm.message_id, data="bc:ok:0")
        await emu.tap(OPERATOR, confirm.message_id, data="bc:ok:0")  # a double tap queues nothing more

        def finished() -> bool:
            with box.db.session() as s:
                b = s.execute(select(Broadcast)).scalars().all()
                return len(b) == 1 and b[0].status == BroadcastStatus.DONE

        await emu.wait_for(finished, timeout=30)
        status = await _newest_with(
            box, OPERATOR, lambda m: m.message_id == confirm.message_id and t("broadcast.state_done", "en") in (m.text or "")
        )
        assert "Sent 8" in status.text and "Blocked 1" in status.text and _buttons(status) == []

        for sim in sims:
            got = [m for m in emu.sent_messages(sim.user_id) if m.text == "New shapes to label!"]
            assert len(got) == (0 if sim is blocker else 1)
            if got:
                assert _buttons(got[0]) == [(t("broadcast.start_button", "ko"), f"go:{project.id}")]
        assert emu.stats.http_429 == 0
        with box.db.session() as s:
            assert s.execute(select(Worker.status).where(Worker.tg_id == blocker.user_id)).scalar_one() == WorkerStatus.UNREACHABLE
            rows = dict(s.execute(select(BroadcastRecipient.chat_id, BroadcastRecipient.status)).all())
        assert rows[blocker.user_id] == RecipientStatus.BLOCKED
        assert rows[operator.id] == RecipientStatus.SENT  # operators are workers too

        # "Start tasks" opens that project's next task
        worker = sims[0]
        note = next(m for m in emu.sent_messages(worker.user_id) if m.text == "New shapes to label!")
        await emu.tap(worker.user_id, note.message_id, data=f"go:{project.id}")
        await emu.wait_for(lambda: worker.screen() is not None, timeout=10)
    finally:
        await box.close()


async def test_detached_broadcast_is_sent_by_the_running_bot_and_cancel_stops_it(tmp_path: Path) -> None:
    box = await Sandbox.start(tmp_path, flood_control=True)
    try:
        emu = box.emulator
        project, _ = create_sample_project(box.db, tmp_path / "images", count=2)
        sims = [SimWorker.create(emu, f"w{i}", "en") for i in range(5)]
        for sim in sims:
            await sim.start()
        with box.db.session() as s:
            bid = service.create(s, project.id, "Batch 2 is live", audience="all").id
        await emu.wait_for(lambda: box.db.call(service.progress, bid).status == BroadcastStatus.DONE, timeout=20)
        for sim in sims:
            assert [m.text for m in emu.sent_messages(sim.user_id)].count("Batch 2 is live") == 1
        assert emu.stats.http_429 == 0
        # a cancelled one is never picked up
        with box.db.session() as s:
            bid2 = service.create(s, project.id, "never", audience="all").id
            service.cancel(s, bid2)
        await asyncio.sleep(2.5)
        assert all("never" not in [m.text for m in emu.sent_messages(sim.user_id)] for sim in sims)
    finally:
        await box.close()
