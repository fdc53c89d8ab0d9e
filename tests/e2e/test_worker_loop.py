"""The core loop end to end: the real bot polls the emulator over HTTP; simulated workers tap."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from bot import clock
from bot.i18n import t
from bot.sandbox import Sandbox, create_sample_project
from bot.simulate import SimWorker
from bot.tasks.models import Answer, Image, Task
from bot.wallet.accounts import LABELING_EXPENSE
from bot.wallet.ledger import account_balance, ledger_total
from bot.workers.models import Worker


def _answers(box: Sandbox) -> int:
    with box.db.session() as s:
        return s.execute(select(func.count(Answer.id))).scalar_one()


async def test_start_registers_and_shows_menu(sandbox: Sandbox) -> None:
    box = sandbox
    ko = SimWorker.create(box.emulator, "민지", "ko")
    en = SimWorker.create(box.emulator, "Alex", "en-US")
    await ko.start()
    await en.start()
    ko_msg = box.emulator.last_message(ko.user_id)
    en_msg = box.emulator.last_message(en.user_id)
    assert ko_msg is not None and en_msg is not None
    assert ko_msg.text == t("welcome.new", "ko", name="민지")
    assert en_msg.text == t("welcome.new", "en", name="Alex")
    assert len(ko_msg.text.splitlines()) == 2
    keyboard = ko_msg.reply_markup["keyboard"]
    assert [b["text"] for row in keyboard for b in row] == [t("menu.get_task", "ko"), t("menu.balance", "ko"), t("menu.help", "ko")]
    with box.db.session() as s:
        langs = dict(s.execute(select(Worker.tg_id, Worker.lang)).all())
    assert langs == {ko.user_id: "ko", en.user_id: "en"}
    await ko.start()  # a second /start welcomes back, registers nobody new
    assert box.emulator.last_message(ko.user_id).text == t("welcome.back", "ko", name="민지")  # type: ignore[union-attr]
    with box.db.session() as s:
        assert s.execute(select(func.count(Worker.id))).scalar_one() == 2


async def test_three_workers_complete_twenty_tasks(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = sandbox
    _project, _ = create_sample_project(box.db, tmp_path / "images", count=20, overlap=3, price=10)
    sims = [SimWorker.create(box.emulator, f"w{i}", "ko") for i in range(3)]
    for sim in sims:
        await sim.start()
    done = await asyncio.gather(*(sim.work() for sim in sims))
    assert done == [20, 20, 20]
    with box.db.session() as s:
        per_task = s.execute(select(Answer.task_id, func.count()).group_by(Answer.task_id)).all()
        assert len(per_task) == 20 and {n for _, n in per_task} == {3}
        assert account_balance(s, LABELING_EXPENSE) == -60 * 10
        assert ledger_total(s) == 0
        uploads = s.execute(select(func.count(Image.id)).where(Image.tg_file_id.is_not(None))).scalar_one()  # type: ignore[union-attr]
        assert uploads == 20
    # every image went up once: all later sends reused the file_id
    assert box.emulator.stats.uploads == 20
    for sim in sims:
        assert sim.last_text().startswith(t("task.all_done", "ko").split("\n")[0])
        # the chat stays short: one task message edited in place, plus welcome and "all done"
        assert len(sim.bot_messages()) <= 4


async def test_double_tap_pays_once(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = sandbox
    create_sample_project(box.db, tmp_path / "images", count=3, overlap=1, price=10)
    sim = SimWorker.create(box.emulator, "w", "ko")
    await sim.start()
    screen = await sim.request_task()
    assert screen is not None
    label = screen.labels()[0]
    first, second = await asyncio.gather(
        box.emulator.tap(sim.user_id, screen.message_id, text=label),
        box.emulator.tap(sim.user_id, screen.message_id, text=label),
    )
    await box.emulator.wait_for(
        lambda: box.emulator.callback_answer(first) is not None and box.emulator.callback_answer(second) is not None
    )
    assert _answers(box) == 1
    notices = {(box.emulator.callback_answer(cq) or {}).get("text") for cq in (first, second)}
    assert t("refuse.already", "ko") in notices
    with box.db.session() as s:
        assert account_balance(s, LABELING_EXPENSE) == -10


async def test_stale_button_after_lease_expired(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A lapsed lease whose slot another worker has taken: the late tap is refused, nothing recorded."""
    box = sandbox
    create_sample_project(box.db, tmp_path / "images", count=3, overlap=1, lease_seconds=60)
    sim = SimWorker.create(box.emulator, "w", "en")
    await sim.start()
    screen = await sim.request_task()
    assert screen is not None
    clock.advance(120)
    other = SimWorker.create(box.emulator, "v", "en")
    await other.start()
    taken = await other.request_task()  # the lapsed task went back to the pool: the only slot is theirs now
    assert taken is not None and taken.assignment_id != screen.assignment_id
    cq = await box.emulator.tap(sim.user_id, screen.message_id, text=screen.labels()[0])
    await box.emulator.wait_for(lambda: box.emulator.callback_answer(cq) is not None)
    assert box.emulator.callback_answer(cq)["text"] == t("refuse.expired", "en")  # type: ignore[index]
    assert _answers(box) == 0


async def test_late_tap_on_a_lapsed_lease_is_accepted_once_while_the_slot_is_free(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    create_sample_project(box.db, tmp_path / "images", count=3, overlap=1, lease_seconds=60)
    sim = SimWorker.create(box.emulator, "w", "en")
    await sim.start()
    screen = await sim.request_task()
    assert screen is not None
    clock.advance(120)
    nxt = await sim.tap(screen, screen.labels()[0])  # nobody took it meanwhile: no lost work
    assert nxt is not None and nxt.assignment_id != screen.assignment_id
    assert _answers(box) == 1


async def test_restart_mid_task_loses_nothing(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = sandbox
    create_sample_project(box.db, tmp_path / "images", count=4, overlap=1)
    sim = SimWorker.create(box.emulator, "w", "ko")
    await sim.start()
    screen = await sim.request_task()
    assert screen is not None
    await box.restart_bot()
    nxt = await sim.tap(screen, screen.labels()[1])
    assert nxt is not None and nxt.assignment_id != screen.assignment_id
    with box.db.session() as s:
        values = list(s.execute(select(Answer.value)).scalars())
    assert values == [screen.labels()[1]]


async def test_blocked_worker_does_not_crash_the_bot(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = sandbox
    create_sample_project(box.db, tmp_path / "images", count=4, overlap=1)
    quitter = SimWorker.create(box.emulator, "quitter", "ko")
    other = SimWorker.create(box.emulator, "other", "ko")
    await quitter.start()
    screen = await quitter.request_task()
    assert screen is not None
    # the worker taps, then blocks the bot before it can show the next task
    await box.emulator.tap(quitter.user_id, screen.message_id, text=screen.labels()[0])
    box.emulator.block(quitter.user_id)
    await box.emulator.wait_for(lambda: _status(box, quitter.user_id) == "unreachable", timeout=10)
    assert _answers(box) == 1  # the answer was given and counts
    await other.start()
    assert await other.request_task() is not None


def _status(box: Sandbox, tg_id: int) -> str:
    with box.db.session() as s:
        return s.execute(select(Worker.status).where(Worker.tg_id == tg_id)).scalar_one()


async def test_missing_image_file_gets_a_friendly_error(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = sandbox
    _, samples = create_sample_project(box.db, tmp_path / "images", count=2, overlap=1)
    for sample in samples:
        sample.path.write_bytes(b"not a jpeg any more")
    sim = SimWorker.create(box.emulator, "w", "en")
    await sim.start()
    before = len(sim.bot_messages())
    await box.emulator.send_text(sim.user_id, t("menu.get_task", "en"))
    await box.emulator.wait_for(lambda: len(sim.bot_messages()) > before)
    assert sim.last_text() == t("error.generic", "en")
    with box.db.session() as s:
        assert s.execute(select(func.count(Task.id))).scalar_one() == 2
    await sim.start()  # the bot is still alive
    assert sim.last_text() == t("welcome.back", "en", name="w")


def _answered_cq(box: Sandbox, cq: str) -> bool:
    return box.emulator.callback_answer(cq) is not None


async def test_other_users_and_forged_taps_change_nothing(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = sandbox
    create_sample_project(box.db, tmp_path / "images", count=4, overlap=2)
    alice = SimWorker.create(box.emulator, "alice", "en")
    bob = SimWorker.create(box.emulator, "bob", "en")
    for sim in (alice, bob):
        await sim.start()
    a_screen = await alice.request_task()
    b_screen = await bob.request_task()
    assert a_screen is not None and b_screen is not None
    a_data = dict(a_screen.buttons)[a_screen.labels()[0]]
    cases = {
        a_data: "refuse.not_yours",  # Bob replays Alice's button on his own message
        "t:l:999999:0": "refuse.unknown",  # no such assignment
        f"t:l:{b_screen.assignment_id}:9": "refuse.invalid",  # label index out of range
    }
    for data, key in cases.items():
        cq = await box.emulator.send_callback_query(bob.user_id, b_screen.message_id, data)
        await box.emulator.wait_for(lambda cq=cq: _answered_cq(box, cq))
        assert box.emulator.callback_answer(cq)["text"] == t(key, "en"), data  # type: ignore[index]
    # garbage that is not our callback format at all is ignored, and the bot stays up
    await box.emulator.send_callback_query(bob.user_id, b_screen.message_id, "x" * 64)
    assert _answers(box) == 0
    with box.db.session() as s:
        assert s.execute(select(func.count(Worker.id))).scalar_one() == 2
    # both can still answer their own tasks normally
    assert await alice.tap(a_screen, a_screen.labels()[0]) is not None
    assert await bob.tap(b_screen, b_screen.labels()[1]) is not None
    assert _answers(box) == 2


async def test_redelivered_update_changes_nothing(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    box = sandbox
    create_sample_project(box.db, tmp_path / "images", count=3, overlap=1, price=10)
    sim = SimWorker.create(box.emulator, "w", "ko")
    await sim.start()
    screen = await sim.request_task()
    assert screen is not None
    process = box.bots[0]
    update = {
        "update_id": 987654,
        "callback_query": {
            "id": "424242",
            "from": {"id": sim.user_id, "is_bot": False, "first_name": "w", "language_code": "ko"},
            "chat_instance": "1",
            "data": dict(screen.buttons)[screen.labels()[0]],
            "message": {
                "message_id": screen.message_id,
                "date": 0,
                "chat": {"id": sim.user_id, "type": "private", "first_name": "w"},
                "from": {"id": 1, "is_bot": True, "first_name": "bot"},
            },
        },
    }
    from aiogram.types import Update

    for _ in range(2):  # Telegram delivers the same update again
        await process.dp.feed_update(process.bot, Update.model_validate(update, context={"bot": process.bot}))
    with box.db.session() as s:
        assert s.execute(select(func.count(Answer.id))).scalar_one() == 1
        assert account_balance(s, LABELING_EXPENSE) == -10
