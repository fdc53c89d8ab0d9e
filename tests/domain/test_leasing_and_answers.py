"""The rules of the core loop, on the domain functions directly, on SQLite and on PostgreSQL
(where the hot statements run on the psycopg lane, ``bot.db.hot``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from bot import clock
from bot.db import Database
from bot.tasks import service
from bot.tasks.models import Answer, Assignment, Task, TaskStatus
from bot.tasks.service import NoTask, Refusal, Submitted, TaskCard
from bot.wallet.ledger import balance, ledger_total
from bot.work import answers
from tests.domain.helpers import make_project, make_workers


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Database]:
    """Every rule below holds on both engines."""
    if request.param == "sqlite":
        yield request.getfixturevalue("db")  # the suite's migrated SQLite database
    else:
        yield request.getfixturevalue("pg_db")


def _next(db: Database, worker_id: int) -> TaskCard | NoTask:
    return db.call(service.next_task, worker_id)


def test_overlap_limits_and_no_repeat(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", count=3, overlap=2)
    w = make_workers(db, 3)
    seen: dict[int, set[int]] = {x: set() for x in w}
    for worker_id in w:
        while True:
            card = _next(db, worker_id)
            if isinstance(card, NoTask):
                break
            assert card.task_id not in seen[worker_id], "a worker got the same task twice"
            seen[worker_id].add(card.task_id)
            result = db.call(answers.submit_answer, worker_id, card.assignment_id, "a")
            assert isinstance(result, Submitted)
    with db.session() as s:
        counts = s.execute(select(Answer.task_id, func.count()).group_by(Answer.task_id)).all()
        statuses = set(s.execute(select(Task.status)).scalars())
    assert sorted(n for _, n in counts) == [2, 2, 2]
    assert statuses == {TaskStatus.DONE}
    assert len(seen[w[2]]) == 0  # the first two workers filled every slot


def test_same_lease_is_returned_until_answered(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs")
    (w,) = make_workers(db, 1)
    first = _next(db, w)
    again = _next(db, w)
    assert isinstance(first, TaskCard) and isinstance(again, TaskCard)
    assert first.assignment_id == again.assignment_id


def test_exactly_one_answer_and_payment(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", price=15)
    w1, w2 = make_workers(db, 2)
    card = _next(db, w1)
    assert isinstance(card, TaskCard)
    assert isinstance(db.call(answers.submit_answer, w1, card.assignment_id, "b"), Submitted)
    assert db.call(answers.submit_answer, w1, card.assignment_id, "b") == Refusal.ALREADY
    assert db.call(answers.submit_answer, w2, card.assignment_id, "b") == Refusal.NOT_YOURS
    assert db.call(answers.submit_answer, w1, 999_999, "b") == Refusal.UNKNOWN
    with db.session() as s:
        assert s.execute(select(func.count(Answer.id))).scalar_one() == 1
        assert balance(s, w1).available == 15
        assert ledger_total(s) == 0


def test_forged_label_is_refused(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs")
    (w,) = make_workers(db, 1)
    card = _next(db, w)
    assert isinstance(card, TaskCard)
    assert db.call(answers.submit_answer, w, card.assignment_id, "not-a-label") == Refusal.INVALID
    outcome = db.call(answers.act_and_next, w, card.assignment_id, "label", "7")
    assert outcome.result == Refusal.INVALID and outcome.next is None
    # the lease is still open and can be answered properly
    assert isinstance(db.call(answers.submit_answer, w, card.assignment_id, "c"), Submitted)


def test_expired_lease_returns_to_pool(db: Database, tmp_path: Path) -> None:
    """A lapsed lease goes back to the pool; once another worker has the only slot, the late tap
    is refused and records nothing."""
    make_project(db, tmp_path / "imgs", count=1, overlap=1, lease_seconds=60)
    w1, w2 = make_workers(db, 2)
    card = _next(db, w1)
    assert isinstance(card, TaskCard)
    assert isinstance(_next(db, w2), NoTask)  # the only slot is leased
    clock.advance(61)
    other = _next(db, w2)
    assert isinstance(other, TaskCard) and other.task_id == card.task_id
    assert db.call(answers.submit_answer, w1, card.assignment_id, "a") == Refusal.EXPIRED
    assert db.call(answers.act_and_next, w1, card.assignment_id, "answer", "a").result == Refusal.EXPIRED
    with db.session() as s:
        statuses = sorted(s.execute(select(Assignment.status)).scalars())
        assert statuses == ["expired", "leased"]
        task = s.get(Task, card.task_id)
        assert task is not None and task.taken == 1
        assert s.execute(select(func.count(Answer.id))).scalar_one() == 0


@pytest.mark.parametrize("swept", [False, True])
def test_a_lapsed_lease_is_still_accepted_once_while_a_slot_is_free(db: Database, tmp_path: Path, swept: bool) -> None:
    """No lost work, no double pay: the late answer is recorded and paid once, the slot counted once."""
    make_project(db, tmp_path / "imgs", count=1, overlap=2, lease_seconds=60, price=15)
    w1, w2 = make_workers(db, 2)
    card = _next(db, w1)
    assert isinstance(card, TaskCard)
    clock.advance(61)
    if swept:  # another worker's claim returned the lapsed lease to the pool
        assert isinstance(_next(db, w2), TaskCard)
    first = db.call(answers.act_and_next, w1, card.assignment_id, "answer", "a")
    assert isinstance(first.result, Submitted) and first.result.reward == 15
    assert db.call(answers.act_and_next, w1, card.assignment_id, "answer", "a").result == Refusal.ALREADY
    assert db.call(answers.submit_answer, w1, card.assignment_id, "b") == Refusal.ALREADY
    with db.session() as s:
        assert s.execute(select(func.count(Answer.id))).scalar_one() == 1
        assert balance(s, w1).available == 15
        task = s.get(Task, card.task_id)
        assert task is not None and (task.taken, task.answers_count) == ((2 if swept else 1), 1)


def test_the_task_leased_by_an_answer_is_held_idle_until_tapped(db: Database, tmp_path: Path) -> None:
    """A worker who answers and leaves holds the next task for ``idle_lease_seconds`` only; a
    worker who shows it again (or taps it) gets the full lease."""
    make_project(db, tmp_path / "imgs", count=3, overlap=1, lease_seconds=600, idle_lease_seconds=120)
    w1, w2 = make_workers(db, 2)
    card = _next(db, w1)
    assert isinstance(card, TaskCard)
    with db.session() as s:
        assert _expires(s, card.assignment_id) == 600
    outcome = db.call(answers.act_and_next, w1, card.assignment_id, "answer", "a")
    leased = outcome.next
    assert isinstance(leased, TaskCard)
    with db.session() as s:
        assert _expires(s, leased.assignment_id) == 120
    clock.advance(121)  # gone: the task is free for someone else after two minutes, not ten
    taken = _next(db, w2)
    assert isinstance(taken, TaskCard) and taken.task_id == leased.task_id
    # a worker who stays: showing the task again extends the idle lease to the full one
    outcome = db.call(answers.act_and_next, w2, taken.assignment_id, "answer", "a")
    assert isinstance(outcome.next, TaskCard)
    clock.advance(60)
    again = _next(db, w2)
    assert isinstance(again, TaskCard) and again.assignment_id == outcome.next.assignment_id
    with db.session() as s:
        assert _expires(s, again.assignment_id) == 660  # from the lease: 60 s idle, then 600


def _expires(s: Session, assignment_id: int) -> int:
    a = s.get(Assignment, assignment_id)
    assert a is not None
    return round((a.expires_at - a.leased_at).total_seconds())


def test_skip_and_report_free_the_slot(db: Database, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", count=2, overlap=1)
    w1, w2 = make_workers(db, 2)
    card = _next(db, w1)
    assert isinstance(card, TaskCard)
    outcome = db.call(answers.act_and_next, w1, card.assignment_id, "skip")
    assert outcome.result is True and isinstance(outcome.next, TaskCard)
    assert outcome.next.task_id != card.task_id
    skipped_for_w2 = _next(db, w2)
    assert isinstance(skipped_for_w2, TaskCard) and skipped_for_w2.task_id == card.task_id
    assert db.call(service.report_problem, w2, skipped_for_w2.assignment_id, "offensive") is True
    with db.session() as s:
        assert s.get(Task, card.task_id).status == TaskStatus.BROKEN  # type: ignore[union-attr]
