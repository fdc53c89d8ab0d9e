"""Each quality rule end to end: the real bot polls the emulator over HTTP; workers tap buttons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot import clock
from bot.i18n import t
from bot.sandbox import Sandbox
from bot.simulate import Screen, SimWorker
from bot.tasks import quality
from bot.tasks.models import Assignment, Task, WorkerProject
from tests.quality.helpers import make_project

WAIT = 30.0  # the machine is shared
WRONG = {"a": "b", "b": "c", "c": "a"}


def _task(box: Sandbox, screen: Screen) -> Task:
    with box.db.session() as s:
        assignment = s.get(Assignment, screen.assignment_id)
        assert assignment is not None
        task = s.get(Task, assignment.task_id)
        assert task is not None
        return task


def _truth(box: Sandbox, screen: Screen) -> str:
    golden = _task(box, screen).golden
    assert golden is not None
    return golden


def _message(box: Sandbox, sim: SimWorker, message_id: int) -> Any:
    return next(m for m in box.emulator.transcript(sim.user_id) if m.message_id == message_id)


async def _settle(box: Sandbox, sim: SimWorker, query_id: str, before_id: int, old_assignment: int | None) -> Screen | None:
    """Wait until the tap is answered and the next task or a text message is shown."""

    def done() -> bool:
        if box.emulator.callback_answer(query_id) is None:
            return False
        screen = sim.screen()
        if screen is not None and screen.assignment_id != old_assignment:
            return True
        return any(m.message_id > before_id and m.text for m in sim.bot_messages())

    await box.emulator.wait_for(done, timeout=WAIT)
    screen = sim.screen()
    return screen if screen is not None and screen.assignment_id != old_assignment else None


async def tap(box: Sandbox, sim: SimWorker, screen: Screen, text: str) -> tuple[Screen | None, dict[str, Any]]:
    before = max((m.message_id for m in box.emulator.transcript(sim.user_id)), default=0)
    query_id = await box.emulator.tap(sim.user_id, screen.message_id, text=text)
    nxt = await _settle(box, sim, query_id, before, screen.assignment_id)
    return nxt, box.emulator.callback_answer(query_id) or {}


async def send(box: Sandbox, sim: SimWorker, text: str) -> str:
    before = max((m.message_id for m in box.emulator.transcript(sim.user_id)), default=0)
    await box.emulator.send_text(sim.user_id, text)
    message = await box.emulator.wait_for_bot_message(sim.user_id, before, timeout=WAIT)
    return message.text or message.caption or ""


async def _worker(box: Sandbox, name: str, lang: str = "en") -> SimWorker:
    sim = SimWorker.create(box.emulator, name, lang)
    await sim.start()
    return sim


async def test_training_feedback_exam_and_stats(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    make_project(box.db, tmp_path / "imgs", count=2, golden=2, training=2, training_required=True, exam_size=2, exam_pass=0.5)
    sim = await _worker(box, "Alex")
    screen = await sim.request_task()
    assert screen is not None and screen.caption.startswith(t("task.training", "en"))
    truth = _truth(box, screen)
    practice_id = screen.message_id
    screen, answer = await tap(box, sim, screen, truth)
    # the practice photo keeps its feedback and loses its buttons; the next task comes below it
    practice = _message(box, sim, practice_id)
    assert practice.caption == f"{t('quality.training.correct', 'en')}\n{t('quality.training.explanation', 'en', text=f'because {truth}')}"
    assert not practice.reply_markup
    assert screen is not None and screen.message_id > practice_id
    truth = _truth(box, screen)
    wrong_id = screen.message_id
    screen, _ = await tap(box, sim, screen, WRONG[truth])
    caption = _message(box, sim, wrong_id).caption
    assert caption.startswith(t("quality.training.wrong", "en", answer=truth))
    # the exam: golden tasks; the result pops up over the first paid task
    assert screen is not None and _task(box, screen).kind == "golden"
    screen, _ = await tap(box, sim, screen, _truth(box, screen))
    assert screen is not None and _task(box, screen).kind == "golden"
    screen, answer = await tap(box, sim, screen, _truth(box, screen))
    assert answer.get("show_alert") is True
    assert answer.get("text") == t("quality.exam.passed", "en", correct=2, total=2, score=100)
    assert screen is not None and _task(box, screen).kind == "normal"
    stats = await send(box, sim, "/stats")
    assert t("quality.stats.accuracy", "en", accuracy=83, rank=1, of=1) in stats  # (0.5 + 2) / 3


async def test_failed_exam_message_and_cool_down(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    make_project(box.db, tmp_path / "imgs", count=2, golden=4, exam_size=2, exam_pass=0.8, exam_cooldown_minutes=20)
    sim = await _worker(box, "민지", "ko")
    screen = await sim.request_task()
    assert screen is not None
    screen, _ = await tap(box, sim, screen, WRONG[_truth(box, screen)])
    assert screen is not None
    screen, _ = await tap(box, sim, screen, _truth(box, screen))
    assert screen is None
    assert sim.last_text() == t("quality.exam.failed", "ko", correct=1, total=2, score=50, needed=80, minutes=20)
    again = await send(box, sim, t("menu.get_task", "ko"))
    assert again == t("quality.exam.cooldown", "ko", minutes=20)
    clock.advance(21 * 60)
    screen = await sim.request_task()
    assert screen is not None and _task(box, screen).kind == "golden"


async def test_low_accuracy_blocks_with_a_message(sandbox: Sandbox, tmp_path: Path) -> None:
    """Three wrong golden answers make P(accuracy <= 0.6) = 1 - 0.4^4 > 0.95: blocked; two do not."""
    box = sandbox
    project = make_project(box.db, tmp_path / "imgs", count=4, golden=4, golden_share=1.0, min_golden_for_block=2, accuracy_threshold=0.6)
    sim = await _worker(box, "Alex")
    screen = await sim.request_task()
    assert screen is not None
    for _ in range(2):  # 0 of 2: P(accuracy <= 0.6) = 1 - 0.4^3 = 0.936, not yet sure
        screen, _ = await tap(box, sim, screen, WRONG[_truth(box, screen)])
        assert screen is not None
    screen, _ = await tap(box, sim, screen, WRONG[_truth(box, screen)])
    assert screen is None
    expected = t("quality.blocked.accuracy", "en", project=project.name, accuracy=20, threshold=60)  # the rule's Beta(1, 1 + 3): mean 1 / 5
    assert sim.last_text() == expected
    assert await send(box, sim, t("menu.get_task", "en")) == expected
    with box.db.session() as s:
        wp = s.execute(select(WorkerProject)).scalars().one()
        assert (wp.stage, wp.blocked_reason, wp.golden_total) == ("blocked", "accuracy", 3)


async def test_fast_answers_warn_then_block(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    project = make_project(box.db, tmp_path / "imgs", count=6, min_seconds=3.0, fast_strikes_warn=2, fast_strikes_block=3)
    sim = await _worker(box, "Alex")
    screen = await sim.request_task()
    assert screen is not None
    screen, answer = await tap(box, sim, screen, "a")  # instant: strike 1
    assert screen is not None and not answer.get("show_alert")
    screen, answer = await tap(box, sim, screen, "a")  # strike 2: a warning pops up, work goes on
    assert answer.get("show_alert") is True
    assert answer.get("text") == t("quality.fast.warning", "en", seconds="3", left=1)
    assert screen is not None
    clock.advance(10)  # a careful answer forgives one strike
    screen, answer = await tap(box, sim, screen, "a")
    assert screen is not None and not answer.get("show_alert")
    screen, _ = await tap(box, sim, screen, "a")  # back to 2: warned again
    assert screen is not None
    screen, _ = await tap(box, sim, screen, "a")  # 3: blocked
    assert screen is None
    assert sim.last_text() == t("quality.blocked.fast", "en", project=project.name, accuracy=50, threshold=0)


async def test_daily_cap_message_and_next_day(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    make_project(box.db, tmp_path / "imgs", count=5, daily_cap=2, overlap=1)
    sim = await _worker(box, "민지", "ko")
    screen = await sim.request_task()
    assert screen is not None
    screen, _ = await tap(box, sim, screen, "a")
    assert screen is not None
    screen, _ = await tap(box, sim, screen, "b")
    assert screen is None
    assert sim.last_text() == t("quality.daily_cap", "ko", cap=2)
    assert await send(box, sim, t("menu.get_task", "ko")) == t("quality.daily_cap", "ko", cap=2)
    clock.advance(24 * 3600)
    assert await sim.request_task() is not None


async def test_skips_in_a_row_pause(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    make_project(box.db, tmp_path / "imgs", count=5, max_skips_in_row=2, exam_cooldown_minutes=15)
    sim = await _worker(box, "Alex")
    screen = await sim.request_task()
    assert screen is not None
    screen, _ = await tap(box, sim, screen, t("task.skip", "en"))
    assert screen is not None
    screen, _ = await tap(box, sim, screen, t("task.skip", "en"))
    assert screen is None
    assert sim.last_text() == t("quality.skips.pause", "en", minutes=15)
    clock.advance(16 * 60)
    assert await sim.request_task() is not None
    with box.db.session() as s:
        assert quality.find_standing(s, s.execute(select(WorkerProject.worker_id)).scalar_one(), 1).skips_in_row == 0  # type: ignore[union-attr]
