"""Batches that finish: tasks that cannot fill with the workers still eligible, and finishing
a batch by hand (domain; the CLI is tested in tests/admin)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot.clock import utcnow
from bot.db import Database
from bot.tasks import projects, stuck
from bot.tasks.models import Assignment, Task, TaskStatus
from bot.tasks.service import TaskCard
from tests.quality.helpers import Driver, make_project, make_workers


def _tasks(db: Database, project_id: int) -> dict[str, Task]:
    with db.read_session() as s:
        return {t.external_id: t for t in s.execute(select(Task).where(Task.project_id == project_id)).scalars()}


def _sweep(db: Database, project_id: int, now: datetime, *, finish: bool = True) -> stuck.Sweep:
    with db.session() as s:
        return stuck.sweep(s, projects.find(s, project_id), now=now, finish=finish)


def _answer_all(d: Driver, values: dict[str, str]) -> None:
    while isinstance(card := d.next(), TaskCard):
        with d.db.read_session() as s:
            task = s.get(Task, card.task_id)
            assert task is not None
        d.answer(card, values[task.external_id])


def test_a_task_short_of_workers_finishes_when_confident_else_is_reported(db: Database, tmp_path: Path) -> None:
    """Overlap 3, only two workers ever came: t0 (both agree) finishes at the target once they
    have left; t1 (they disagree) stays stuck with the reason; nothing happens while they may
    still come back."""
    project = make_project(db, tmp_path / "imgs", count=2, overlap=3, confidence_target=0.6, min_overlap=2, stuck_after_seconds=1800)
    assert project.id is not None
    w1, w2 = make_workers(db, 2)
    start = utcnow()
    d1, d2 = Driver(db, w1, start), Driver(db, w2, start)
    _answer_all(d1, {"t0": "a", "t1": "a"})
    _answer_all(d2, {"t0": "a", "t1": "b"})
    tasks = _tasks(db, project.id)
    assert tasks["t1"].status == TaskStatus.OPEN and tasks["t1"].answers_count == 2
    # both have had every task: no eligible worker is left for the third answer
    early = _sweep(db, project.id, start + timedelta(minutes=5), finish=False)
    assert {row.external_id for row in early.stuck} == {t for t, task in tasks.items() if task.status == TaskStatus.OPEN}
    assert all(row.reason == "no_workers" and row.needed == 1 for row in early.stuck)
    assert _tasks(db, project.id)["t1"].status == TaskStatus.OPEN  # finish=False (stats) changes nothing
    later = _sweep(db, project.id, start + timedelta(minutes=40))
    after = _tasks(db, project.id)
    assert after["t0"].status == TaskStatus.DONE
    assert after["t1"].status == TaskStatus.OPEN  # 1 vs 1: not confident, reported instead
    assert [row.external_id for row in later.stuck] == ["t1"]
    assert later.stuck[0].confidence is not None and later.stuck[0].confidence < 0.6


def test_an_eligible_worker_keeps_a_task_waiting(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=1, overlap=2, stuck_after_seconds=1800)
    assert project.id is not None
    w1, w2 = make_workers(db, 2)
    now = utcnow()
    _answer_all(Driver(db, w1, now), {"t0": "a"})
    Driver(db, w2, now).next()  # w2 holds the other slot: the task can fill
    assert _sweep(db, project.id, now + timedelta(minutes=1)).stuck == []
    assert _tasks(db, project.id)["t0"].status == TaskStatus.OPEN


def test_finish_project_closes_the_batch_and_keeps_every_answer(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=3, overlap=3)
    assert project.id is not None
    w1, w2 = make_workers(db, 2)
    now = utcnow()
    d1 = Driver(db, w1, now)
    card = d1.next()
    assert isinstance(card, TaskCard)
    d1.answer(card, "a")
    held = Driver(db, w2, now).next()  # a live lease when the operator finishes
    assert isinstance(held, TaskCard)
    with db.session() as s:
        done = stuck.finish_project(s, projects.find(s, project.id), now=now)
    assert (done.tasks_finished, done.leases_ended, done.tasks_unanswered, done.labelled) == (1, 1, 2, 1)
    tasks = _tasks(db, project.id)
    assert tasks["t0"].status == TaskStatus.DONE and tasks["t0"].taken == 1
    assert all(t.status == TaskStatus.OPEN and t.taken == 0 for k, t in tasks.items() if k != "t0")
    with db.read_session() as s:
        assert projects.find(s, project.id).status == "closed"
        assert {a.status for a in s.execute(select(Assignment)).scalars()} == {"answered", "expired"}


def test_the_sweep_returns_lapsed_leases_of_departed_workers_first(db: Database, tmp_path: Path) -> None:
    """At the end of a batch nobody claims, so nobody sweeps lapsed leases: a worker who took a
    task and left would hold it forever. The batches job expires them, then finishes the task."""
    project = make_project(db, tmp_path / "imgs", count=1, overlap=3, lease_seconds=60, stuck_after_seconds=600)
    assert project.id is not None
    w1, w2, w3 = make_workers(db, 3)
    start = utcnow()
    _answer_all(Driver(db, w1, start), {"t0": "a"})
    _answer_all(Driver(db, w2, start), {"t0": "a"})
    assert isinstance(Driver(db, w3, start).next(), TaskCard)  # takes the last slot and leaves
    with db.session() as s:
        assert stuck.sweep_all(s, now=start + timedelta(seconds=30))[0].finished == []  # the lease is live
    with db.session() as s:
        sweeps = stuck.sweep_all(s, now=start + timedelta(seconds=700))
    assert [task for sw in sweeps for task in sw.finished] == [_tasks(db, project.id)["t0"].id]
    with db.read_session() as s:
        assert {a.status for a in s.execute(select(Assignment)).scalars()} == {"answered", "expired"}
