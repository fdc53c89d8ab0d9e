"""Stages and rules on the domain loop (next_task / submit_answer / skip), with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from bot.db import Database
from bot.tasks import quality
from bot.tasks.models import Answer, Task, TaskKind, WorkerProject
from bot.tasks.service import NoTask, NoTaskReason, Submitted, TaskCard
from tests.quality.helpers import Driver, make_project, make_workers, truth_of

WRONG = {"a": "b", "b": "c", "c": "a"}


@pytest.fixture(autouse=True)
def _seeded() -> None:
    quality.rng.seed(12345)


def _standing(db: Database, worker_id: int, project_id: int) -> WorkerProject:
    with db.session() as s:
        wp = quality.find_standing(s, worker_id, project_id)
        assert wp is not None
        return wp


def test_training_then_exam_then_paid_work(db: Database, tmp_path: Path) -> None:
    project = make_project(
        db, tmp_path / "imgs", count=3, golden=3, training=2, training_required=True, exam_size=2, exam_pass=0.5, price=20
    )
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    # training: the right answer and the explanation come back after each try, unpaid
    for expect_correct in (True, False):
        card = d.next()
        assert isinstance(card, TaskCard) and card.kind == TaskKind.TRAINING
        truth = truth_of(db, card.task_id)
        assert truth is not None
        result = d.answer(card, truth if expect_correct else WRONG[truth])
        assert isinstance(result, Submitted) and result.reward == 0
        fb = result.training_feedback
        assert fb is not None and fb.correct is expect_correct and fb.right_answer == truth
        assert fb.explanation == f"because {truth}"
    assert _standing(db, w, project.id).stage == "training"
    # exam: golden tasks, unpaid, a notice when it ends
    card = d.next()
    assert isinstance(card, TaskCard) and card.kind == TaskKind.GOLDEN
    assert _standing(db, w, project.id).stage == "exam"
    first = d.answer(card, truth_of(db, card.task_id))  # type: ignore[arg-type]
    assert isinstance(first, Submitted) and first.reward == 0 and first.notice is None
    card = d.next()
    assert isinstance(card, TaskCard) and card.kind == TaskKind.GOLDEN
    last = d.answer(card, WRONG[truth_of(db, card.task_id)])  # type: ignore[index]
    assert isinstance(last, Submitted) and last.reward == 0
    assert last.notice is not None and last.notice.key == "quality.exam.passed"
    assert last.notice.params["score"] == 50 and not last.notice.stops
    # paid work
    card = d.next()
    assert isinstance(card, TaskCard) and card.kind == TaskKind.NORMAL
    paid = d.answer(card, "a")
    assert isinstance(paid, Submitted) and paid.reward == 20
    wp = _standing(db, w, project.id)
    assert (wp.stage, wp.exam_correct, wp.exam_total, wp.golden_total) == ("work", 1, 2, 2)


def test_failed_exam_waits_for_the_cool_down_then_retries_on_other_tasks(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=2, golden=4, exam_size=2, exam_pass=0.8, exam_cooldown_minutes=30)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    seen = set()
    for _ in range(2):
        card = d.next()
        assert isinstance(card, TaskCard) and card.kind == TaskKind.GOLDEN
        seen.add(card.task_id)
        result = d.answer(card, WRONG[truth_of(db, card.task_id)])  # type: ignore[index]
    assert isinstance(result, Submitted) and result.notice is not None
    assert result.notice.key == "quality.exam.failed" and result.notice.stops
    assert result.notice.params == {"score": 0, "needed": 80, "correct": 0, "total": 2, "minutes": 30}
    blocked = d.next()
    assert isinstance(blocked, NoTask) and blocked.reason == NoTaskReason.QUALITY
    assert blocked.notice is not None and blocked.notice.key == "quality.exam.cooldown"
    assert 1 <= blocked.notice.params["minutes"] <= 30
    d.wait(minutes=31)
    for _ in range(2):
        card = d.next()
        assert isinstance(card, TaskCard) and card.kind == TaskKind.GOLDEN and card.task_id not in seen
        result = d.answer(card, truth_of(db, card.task_id))  # type: ignore[arg-type]
    assert isinstance(result, Submitted) and result.notice and result.notice.key == "quality.exam.passed"
    assert _standing(db, w, project.id).stage == "work"
    # no golden tasks left for a third attempt of anyone else: a clear notice, not a crash
    (w2,) = make_workers(db, 1, base=7000)
    d2 = Driver(db, w2)
    for _ in range(2):
        card = d2.next()
        assert isinstance(card, TaskCard)
        d2.answer(card, WRONG[truth_of(db, card.task_id)])  # type: ignore[index]
    d2.wait(minutes=31)
    for _ in range(2):
        card = d2.next()
        assert isinstance(card, TaskCard)
        d2.answer(card, WRONG[truth_of(db, card.task_id)])  # type: ignore[index]
    d2.wait(minutes=31)
    none_left = d2.next()
    assert isinstance(none_left, NoTask) and none_left.notice and none_left.notice.key == "quality.exam.unavailable"


def test_accuracy_rule_blocks_after_min_golden(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=6, golden=6, golden_share=1.0, min_golden_for_block=3, accuracy_threshold=0.6)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    notices = []
    for _ in range(3):
        card = d.next()
        assert isinstance(card, TaskCard) and card.kind == TaskKind.GOLDEN  # share 1.0: golden first
        result = d.answer(card, WRONG[truth_of(db, card.task_id)])  # type: ignore[index]
        assert isinstance(result, Submitted)
        notices.append(result.notice)
    assert notices[:2] == [None, None]  # not before min_golden_for_block golden answers
    assert notices[2] is not None and notices[2].key == "quality.blocked.accuracy" and notices[2].stops
    assert notices[2].params["accuracy"] == 20 and notices[2].params["threshold"] == 60  # the rule's Beta(1, 1 + 3): mean 1 / 5
    after = d.next()
    assert isinstance(after, NoTask) and after.notice and after.notice.key == "quality.blocked.accuracy"
    assert _standing(db, w, project.id).blocked_reason == "accuracy"


def test_accurate_worker_is_not_blocked(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", count=4, golden=4, golden_share=0.5, min_golden_for_block=2, accuracy_threshold=0.6)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    answered = 0
    while isinstance(card := d.next(), TaskCard):
        truth = truth_of(db, card.task_id)
        result = d.answer(card, truth or "a")
        assert isinstance(result, Submitted) and result.notice is None
        answered += 1
    assert answered >= 4 and isinstance(card, NoTask) and card.reason == NoTaskReason.NONE_LEFT


def test_fast_answers_warn_then_block_and_normal_speed_forgives(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=10, min_seconds=2.0, fast_strikes_warn=2, fast_strikes_block=3, overlap=1)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)

    def go(seconds: float):  # type: ignore[no-untyped-def]
        card = d.next()
        assert isinstance(card, TaskCard)
        result = d.answer(card, "a", seconds=seconds)
        assert isinstance(result, Submitted)
        return result.notice

    assert go(0.5) is None  # strike 1
    assert go(5.0) is None  # forgiven: 0
    assert go(0.5) is None  # 1
    warning = go(0.4)  # 2: warned
    assert warning is not None and warning.key == "quality.fast.warning" and not warning.stops
    assert warning.params == {"seconds": "2", "left": 1}
    assert isinstance(d.next(), TaskCard)  # a warning does not stop work
    blocked = go(0.3)  # 3: blocked
    assert blocked is not None and blocked.key == "quality.blocked.fast" and blocked.stops
    nxt = d.next()
    assert isinstance(nxt, NoTask) and nxt.notice and nxt.notice.key == "quality.blocked.fast"
    with db.session() as s:
        assert quality.unblock(s, w, project.id)
    assert isinstance(d.next(), TaskCard)


def test_daily_cap_stops_until_tomorrow(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", count=6, daily_cap=2, overlap=1)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    results = []
    for _ in range(2):
        card = d.next()
        assert isinstance(card, TaskCard)
        results.append(d.answer(card, "a"))
    assert results[0].notice is None
    assert results[1].notice is not None and results[1].notice.key == "quality.daily_cap"
    assert results[1].notice.params == {"cap": 2}
    capped = d.next()
    assert isinstance(capped, NoTask) and capped.notice and capped.notice.key == "quality.daily_cap"
    d.wait(days=1)
    assert isinstance(d.next(), TaskCard)


def test_skips_in_a_row_pause_and_an_answer_resets_the_count(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=8, max_skips_in_row=3, exam_cooldown_minutes=15)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    for _ in range(2):
        card = d.next()
        assert isinstance(card, TaskCard)
        assert d.skip(card) is True
    card = d.next()
    assert isinstance(card, TaskCard)
    d.answer(card, "a")  # resets the run of skips
    assert _standing(db, w, project.id).skips_in_row == 0
    for _ in range(3):
        card = d.next()
        assert isinstance(card, TaskCard)
        d.skip(card)
    paused = d.next()
    assert isinstance(paused, NoTask) and paused.notice and paused.notice.key == "quality.skips.pause"
    assert paused.notice.params["minutes"] == 15
    d.wait(minutes=16)
    assert isinstance(d.next(), TaskCard)


def test_golden_tasks_are_mixed_in_at_the_share_and_never_repeat(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", count=40, golden=30, golden_share=0.25, overlap=1)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    kinds = []
    seen = set()
    for _ in range(40):
        card = d.next()
        assert isinstance(card, TaskCard)
        assert card.task_id not in seen
        seen.add(card.task_id)
        kinds.append(card.kind)
        d.answer(card, truth_of(db, card.task_id) or "a")
    share = kinds.count("golden") / len(kinds)
    assert 0.1 <= share <= 0.4, share


def test_golden_tasks_have_unlimited_overlap(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=0, golden=1, exam_size=1, exam_pass=0.0, overlap=1)
    ws = make_workers(db, 4)
    for w in ws:
        card = Driver(db, w).next()
        assert isinstance(card, TaskCard) and card.kind == "golden"
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(WorkerProject).where(WorkerProject.project_id == project.id)).scalar() == 4


def _give_accuracy(db: Database, project_id: int, worker_id: int, correct: int, total: int) -> None:
    with db.session() as s:
        project = s.get(quality.Project, project_id)
        wp = quality.standing(s, worker_id, project)
        s.execute(update(WorkerProject).where(WorkerProject.id == wp.id).values(golden_correct=correct, golden_total=total))


def test_dynamic_overlap_stops_a_confident_task_and_keeps_min_overlap(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=2, overlap=5, min_overlap=2, confidence_target=0.97)
    ws = make_workers(db, 5)
    for w in ws:
        _give_accuracy(db, project.id, w, 19, 20)  # 0.93 smoothed: a,a -> 0.997; a,b,a -> 0.962; a,b,a,a -> 0.998
    drivers = [Driver(db, w) for w in ws]
    first = drivers[0].next()
    assert isinstance(first, TaskCard)
    r = drivers[0].answer(first, "a")
    assert isinstance(r, Submitted) and not r.task_done  # min overlap 2 holds
    card = drivers[1].next()
    assert isinstance(card, TaskCard) and card.task_id == first.task_id
    r = drivers[1].answer(card, "a")
    assert isinstance(r, Submitted) and r.task_done  # two agreeing accurate workers are enough
    with db.session() as s:
        task = s.get(Task, first.task_id)
        assert task is not None and task.status == "done" and task.result == "a" and task.confidence >= 0.97  # type: ignore[operator]
    # the second task: disagreement keeps it open until the posterior is high enough
    votes = ["a", "b", "a", "a"]
    done = []
    for d, vote in zip(drivers, votes):
        card = d.next()
        assert isinstance(card, TaskCard) and card.task_id != first.task_id
        r = d.answer(card, vote)
        assert isinstance(r, Submitted)
        done.append(r.task_done)
    assert done == [False, False, False, True]
    assert isinstance(drivers[4].next(), NoTask)  # both tasks done: nothing handed out


def test_fixed_overlap_still_records_online_result(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", count=1, overlap=2)
    ws = make_workers(db, 2)
    for w, vote in zip(ws, ["b", "b"]):
        d = Driver(db, w)
        card = d.next()
        assert isinstance(card, TaskCard)
        d.answer(card, vote)
    with db.session() as s:
        task = s.execute(select(Task)).scalars().one()
        assert (task.status, task.result, task.answers_count) == ("done", "b", 2)
        assert s.execute(select(func.count(Answer.id))).scalar() == 2


def test_dynamic_overlap_leases_min_overlap_then_one_at_a_time(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", count=2, overlap=5, min_overlap=2, confidence_target=0.999)
    ws = make_workers(db, 4)
    d = [Driver(db, w) for w in ws]
    c0, c1 = d[0].next(), d[1].next()
    assert isinstance(c0, TaskCard) and isinstance(c1, TaskCard) and c0.task_id == c1.task_id  # min overlap at once
    c2 = d[2].next()
    assert isinstance(c2, TaskCard) and c2.task_id != c0.task_id  # the first task is full for now
    d[0].answer(c0, "a")
    d[1].answer(c1, "b")  # not confident: one more worker may take it
    c3 = d[3].next()
    assert isinstance(c3, TaskCard) and c3.task_id == c0.task_id


def test_stats_rank_by_accuracy_with_ties(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=1)
    ws = make_workers(db, 4)
    for w, (c, t) in zip(ws, [(9, 10), (9, 10), (10, 10), (1, 4)]):
        _give_accuracy(db, project.id, w, c, t)
    with db.session() as s:
        ranks = [quality.worker_stats(s, w)[0] for w in ws]
    assert [(r.rank, r.ranked) for r in ranks] == [(2, 4), (2, 4), (1, 4), (4, 4)]
    assert ranks[2].accuracy == pytest.approx(10.5 / 11)
    (fresh,) = make_workers(db, 1, base=8000)
    with db.session() as s:
        assert quality.worker_stats(s, fresh) == []


def _wrong(db: Database, task_id: int) -> str:
    truth = truth_of(db, task_id)
    assert truth is not None
    return WRONG[truth]


def test_exam_attempts_run_out_even_without_a_cool_down(db: Database, tmp_path: Path) -> None:
    """With no cool-down the exam could be retaken until the golden tasks ran out: now it stops
    after ``exam_max_attempts`` with a clear message, and stays stopped."""
    project = make_project(
        db, tmp_path / "imgs", count=2, golden=12, exam_size=2, exam_pass=0.8, exam_cooldown_minutes=0, exam_max_attempts=2
    )
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    notices = []
    for _attempt in range(2):
        for _ in range(2):
            card = d.next()
            assert isinstance(card, TaskCard) and card.kind == TaskKind.GOLDEN
            result = d.answer(card, _wrong(db, card.task_id))
        assert isinstance(result, Submitted) and result.notice is not None
        notices.append(result.notice)
    assert notices[0].key == "quality.exam.failed"
    assert notices[1].key == "quality.exam.failed_final" and notices[1].stops and notices[1].params["attempts"] == 2
    for _ in range(2):  # a later claim (cool-down long over) gets the same answer, and no golden task
        d.wait(minutes=120)
        after = d.next()
        assert isinstance(after, NoTask) and after.notice is not None and after.notice.key == "quality.exam.no_attempts"
        assert after.notice.params == {"attempts": 2}
    wp = _standing(db, w, project.id)
    assert (wp.stage, wp.exam_attempts, wp.exam_total) == ("failed", 2, 2)


def test_exam_attempts_zero_means_unlimited(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", count=2, golden=8, exam_size=1, exam_pass=1.0, exam_cooldown_minutes=0, exam_max_attempts=0)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    for _ in range(5):
        card = d.next()
        assert isinstance(card, TaskCard) and card.kind == TaskKind.GOLDEN
        result = d.answer(card, _wrong(db, card.task_id))
        assert isinstance(result, Submitted) and result.notice is not None and result.notice.key == "quality.exam.failed"


def test_an_honest_worker_on_a_hard_task_is_kept(db: Database, tmp_path: Path) -> None:
    """60 % right on golden tasks of a three-label project is far above chance (33 %): a fixed
    70 % threshold would block; the posterior rule (default floor 0.38) keeps the worker."""
    project = make_project(db, tmp_path / "imgs", count=2, golden=20, golden_share=1.0)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    for i in range(20):
        card = d.next()
        assert isinstance(card, TaskCard) and card.kind == TaskKind.GOLDEN
        truth = truth_of(db, card.task_id)
        assert truth is not None
        result = d.answer(card, truth if i % 5 < 3 else WRONG[truth])
        assert isinstance(result, Submitted) and result.notice is None
    assert _standing(db, w, project.id).stage == "work"


def test_a_worker_at_chance_is_blocked_once_the_evidence_is_sure(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=2, golden=30, golden_share=1.0)
    (w,) = make_workers(db, 1)
    d = Driver(db, w)
    answered = 0
    while True:
        card = d.next()
        if not isinstance(card, TaskCard):
            break
        result = d.answer(card, _wrong(db, card.task_id))
        answered += 1
        assert isinstance(result, Submitted)
        if result.notice is not None:
            assert result.notice.key == "quality.blocked.accuracy"
            break
    # Beta(1, 1 + n): P(accuracy <= 1/3 + 0.05) = 1 - 0.617^(n + 1): 0.945 at n = 5, 0.966 at n = 6
    assert answered == 6
    assert _standing(db, w, project.id).blocked_reason == "accuracy"


def test_a_worker_blocked_on_the_crowds_evidence_reads_the_accuracy_the_rule_judged(db: Database, tmp_path: Path) -> None:
    """No golden answer at all (``min_golden_for_block`` 0): a worker who always disagrees with
    two who agree is blocked by agreement with the crowd. The notice quotes the accuracy the rule
    judged, below the threshold it quotes; the golden answers alone (none) would say 50 %."""
    project = make_project(db, tmp_path / "imgs", count=60, overlap=3, min_golden_for_block=0)
    labels = ("a", "b", "c")
    crowd = make_workers(db, 3)
    drivers = [Driver(db, w) for w in crowd]

    def truth(task_id: int) -> str:
        with db.session() as s:
            task = s.get(Task, task_id)
            assert task is not None and task.external_id is not None
            return labels[int(task.external_id[1:]) % 3]  # make_project's truth of normal task i

    notice = None
    for _ in range(60):
        for i, d in enumerate(drivers):
            card = d.next()
            assert isinstance(card, TaskCard), card
            right = truth(card.task_id)
            result = d.answer(card, WRONG[right] if i == 2 else right)
            assert isinstance(result, Submitted)
            if result.notice is not None:
                assert i == 2, "an agreeing worker was blocked"
                notice = result.notice
        if notice is not None:
            break
    assert notice is not None and notice.key == "quality.blocked.accuracy"
    assert notice.params["accuracy"] < notice.params["threshold"] == 38, notice.params
    assert _standing(db, crowd[2], project.id).golden_total == 0
    again = drivers[2].next()  # asking for work later quotes the same kind of figure
    assert isinstance(again, NoTask) and again.notice is not None and again.notice.key == "quality.blocked.accuracy"
    assert again.notice.params["accuracy"] < again.notice.params["threshold"], again.notice.params
