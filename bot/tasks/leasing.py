"""Handing out tasks: leases with a time limit, one slot of a task's overlap per lease.

A claim is correct under concurrency on both engines:

* SQLite: every write transaction starts with ``BEGIN IMMEDIATE``, so claims are serialised by
  the database's single write lock; the conditional ``UPDATE task SET taken = taken + 1 WHERE
  taken < cap`` is the guard that matters.
* PostgreSQL: the candidate row is picked with ``FOR UPDATE SKIP LOCKED``, so concurrent
  replicas never wait on each other nor take the same slot; the same conditional UPDATE runs.

In both, ``UNIQUE(task_id, worker_id)`` on assignments makes "a worker never gets the same task
twice" a database fact rather than a hope.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, and_, cast, exists, or_, select, update
from sqlmodel import Session

from bot.clock import utcnow
from bot.tasks.models import (
    Assignment,
    AssignmentStatus,
    Project,
    ProjectStatus,
    Task,
    TaskKind,
    TaskStatus,
)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def expire_leases(session: Session, now: datetime | None = None) -> int:
    """Return expired leases to the pool; returns how many expired."""
    now = now or utcnow()
    rows = session.execute(
        update(Assignment)
        .where(Assignment.status == AssignmentStatus.LEASED, Assignment.expires_at <= now)
        .values(status=AssignmentStatus.EXPIRED, closed_at=now)
        .returning(Assignment.task_id)
    ).all()
    for task_id, n in Counter(row[0] for row in rows).items():
        session.execute(update(Task).where(Task.id == task_id).values(taken=Task.taken - n))
    return len(rows)


def release_slot(session: Session, task_id: int) -> None:
    session.execute(update(Task).where(Task.id == task_id, Task.taken > 0).values(taken=Task.taken - 1))


def active_lease(session: Session, worker_id: int, now: datetime, project_id: int | None = None) -> Assignment | None:
    query = select(Assignment).where(
        Assignment.worker_id == worker_id,
        Assignment.status == AssignmentStatus.LEASED,
        Assignment.expires_at > now,
    )
    if project_id is not None:
        query = query.where(Assignment.project_id == project_id)
    return session.execute(query.order_by(Assignment.id.desc()).limit(1)).scalars().first()  # type: ignore[union-attr]


def slot_free(project: Project):  # type: ignore[no-untyped-def]
    """SQL condition: a normal task of ``project`` has a slot for one more lease.

    With a confidence target (dynamic overlap) a task is leased to ``min_overlap`` workers at once
    and after that to one more at a time, so a task that turns confident is not already out with
    several workers whose answers would be wasted.
    """
    cap = Task.taken < project.overlap
    if project.confidence_target is None:
        return cap
    return and_(cap, or_(Task.taken < project.min_overlap, Task.taken <= Task.answers_count))


_SHUFFLE_MOD = 1_000_003  # a prime: multiplying ids by a non-zero residue permutes them


def _golden_order(worker_id: int):  # type: ignore[no-untyped-def]
    """A per-worker shuffled order of golden tasks, in plain integer SQL (same on both engines).

    Every worker gets their own sequence of control and exam tasks, so there is no "first five
    golden tasks" to learn and pass around; it is deterministic, so runs are reproducible.
    """
    multiplier = (2_654_435_761 + 7_919 * worker_id) % _SHUFFLE_MOD or 1
    return (cast(Task.id, BigInteger) * multiplier) % _SHUFFLE_MOD  # BIGINT: no overflow on PostgreSQL


def _candidate_ids(session: Session, project: Project, worker_id: int, kind: TaskKind, limit: int) -> list[int]:
    seen = exists().where(and_(Assignment.task_id == Task.id, Assignment.worker_id == worker_id))
    query = select(Task.id).where(
        Task.project_id == project.id,
        Task.status == TaskStatus.OPEN,
        Task.kind == kind.value,
        ~seen,
    )
    if kind == TaskKind.NORMAL:
        query = query.where(slot_free(project))
    query = query.order_by(_golden_order(worker_id) if kind == TaskKind.GOLDEN else Task.id).limit(limit)
    if _dialect(session) == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Task)  # type: ignore[arg-type]
    return [row[0] for row in session.execute(query)]


def claim_in_project(
    session: Session, project: Project, worker_id: int, *, kind: TaskKind = TaskKind.NORMAL, now: datetime | None = None
) -> Assignment | None:
    """Lease one task of ``kind`` in ``project`` to the worker, or None when there is none."""
    now = now or utcnow()
    for task_id in _candidate_ids(session, project, worker_id, kind, limit=4):
        guard = [Task.id == task_id, Task.status == TaskStatus.OPEN]
        if kind == TaskKind.NORMAL:
            guard.append(slot_free(project))
        taken = session.execute(update(Task).where(*guard).values(taken=Task.taken + 1))
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            continue
        assignment = Assignment(
            task_id=task_id,
            worker_id=worker_id,
            project_id=project.id,  # type: ignore[arg-type]
            status=AssignmentStatus.LEASED,
            leased_at=now,
            expires_at=now + timedelta(seconds=project.lease_seconds),
        )
        session.add(assignment)
        session.flush()
        return assignment
    return None


def claimable_projects(session: Session, project_id: int | None = None) -> list[Project]:
    query = select(Project).where(Project.status == ProjectStatus.ACTIVE)
    if project_id is not None:
        query = query.where(Project.id == project_id)
    return list(session.execute(query.order_by(Project.id)).scalars())
