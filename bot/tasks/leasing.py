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

import weakref
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Select, Update, and_, bindparam, cast, exists, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.db.hot import execute, hot
from bot.db.tables import bound_row
from bot.tasks import card_row, projects
from bot.tasks.models import (
    Assignment,
    AssignmentStatus,
    Image,
    Project,
    Task,
    TaskKind,
    TaskStatus,
)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


SWEEP_EVERY = timedelta(seconds=1)
_last_sweep: weakref.WeakKeyDictionary[object, datetime] = weakref.WeakKeyDictionary()  # by engine


def expire_leases(session: Session, now: datetime | None = None, *, force: bool = False) -> int:
    """Return expired leases to the pool; returns how many expired.

    Runs at most once a second per database in a process (every claim calls it; expiry is
    measured in minutes, so a second's delay costs nothing and saves a write per answer).
    On PostgreSQL, rows another replica is expiring right now are skipped, not waited for.
    """
    now = now or utcnow()
    key = session.get_bind()
    last = _last_sweep.get(key)
    if not force and last is not None and last <= now < last + SWEEP_EVERY:
        return 0
    _last_sweep[key] = now
    due = select(col(Assignment.id)).where(col(Assignment.status) == AssignmentStatus.LEASED, col(Assignment.expires_at) <= now)
    if _dialect(session) == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = execute(
        session,
        update(Assignment)
        .where(col(Assignment.id).in_(due.scalar_subquery()), col(Assignment.status) == AssignmentStatus.LEASED)
        .values(status=AssignmentStatus.EXPIRED, closed_at=now)
        .returning(col(Assignment.task_id)),
    ).all()
    for task_id, n in Counter(row[0] for row in rows).items():
        execute(session, update(Task).where(col(Task.id) == task_id).values(taken=col(Task.taken) - n))
    return len(rows)


def release_slot(session: Session, task_id: int) -> None:
    execute(session, update(Task).where(col(Task.id) == task_id, col(Task.taken) > 0).values(taken=col(Task.taken) - 1))


def active_lease(session: Session, worker_id: int, now: datetime, project_id: int | None = None) -> Assignment | None:
    query = select(Assignment).where(
        col(Assignment.worker_id) == worker_id,
        col(Assignment.status) == AssignmentStatus.LEASED,
        col(Assignment.expires_at) > now,
    )
    if project_id is not None:
        query = query.where(col(Assignment.project_id) == project_id)
    return session.execute(query.order_by(col(Assignment.id).desc()).limit(1)).scalars().first()


_SHUFFLE_MOD = 1_000_003  # a prime: multiplying ids by a non-zero residue permutes them


_CLAIMS: dict[tuple[str, str, bool], Update] = {}


def _capacity(kind: TaskKind, dynamic: bool) -> list[Any]:
    """The slot guard of a normal task (golden and training tasks have no capacity).

    With a confidence target (dynamic overlap) a task is leased to ``min_overlap`` workers at
    once and after that to one more at a time, so a task that turns confident is not already out
    with several workers whose answers would be wasted.
    """
    if kind != TaskKind.NORMAL:
        return []
    guard = [col(Task.taken) < bindparam("b_overlap")]
    if dynamic:
        guard.append(or_(col(Task.taken) < bindparam("b_min_overlap"), col(Task.taken) <= col(Task.answers_count)))
    return guard


def _claim_statement(dialect: str, kind: TaskKind, dynamic: bool) -> Update:
    """``UPDATE task SET taken = taken + 1 WHERE id = (the next task for this worker) AND
    <capacity> RETURNING id``: picking and taking a slot in one statement.

    Built once per shape with bind parameters (constructing SQL expressions costs more CPU than
    running them). On PostgreSQL the inner SELECT takes its row ``FOR UPDATE SKIP LOCKED``, so
    concurrent claims never wait on each other nor pick the same row; the outer guard is
    re-checked on the locked row. On SQLite claims are serialised by the write lock.
    """
    key = (dialect, kind.value, dynamic)
    statement = _CLAIMS.get(key)
    if statement is not None:
        return statement
    seen = exists().where(and_(col(Assignment.task_id) == col(Task.id), col(Assignment.worker_id) == bindparam("b_worker_id")))
    pick = select(col(Task.id)).where(
        col(Task.project_id) == bindparam("b_project_id"),
        col(Task.status) == TaskStatus.OPEN.value,
        col(Task.kind) == kind.value,
        ~seen,
        *_capacity(kind, dynamic),
    )
    if kind == TaskKind.GOLDEN:
        # A per-worker shuffled order of golden tasks in plain integer SQL (same on both
        # engines): every worker meets control and exam tasks in their own sequence, so there
        # is no "first five golden tasks" to learn and pass around; BIGINT avoids overflow.
        order: Any = (cast(col(Task.id), BigInteger) * bindparam("b_multiplier", type_=BigInteger)) % _SHUFFLE_MOD
    else:
        order = col(Task.id)
    pick = pick.order_by(order).limit(1)
    if dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True, of=Task)
    statement = (
        update(Task)
        .where(col(Task.id) == pick.scalar_subquery(), col(Task.status) == TaskStatus.OPEN.value, *_capacity(kind, dynamic))
        .values(taken=col(Task.taken) + 1)
        .returning(col(Task.id))
    )
    _CLAIMS[key] = hot(statement)
    return statement


def _golden_multiplier(worker_id: int) -> int:
    return (2_654_435_761 + 7_919 * worker_id) % _SHUFFLE_MOD or 1


_LEASE_FIELDS = ("worker_id", "project_id", "status", "leased_at", "expires_at", "chat_id", "message_id")
_CLAIM_WITH_CARD: dict[tuple[str, bool], Select[Any]] = {}


def _claim_with_card(kind: TaskKind, dynamic: bool) -> Select[Any]:
    """PostgreSQL: take a slot, insert the lease and read the task's card in one statement,
    where the other path needs three round trips (claim, lease INSERT, card SELECT):

    ``WITH picked AS (<the claim>), lease AS (INSERT INTO assignment SELECT picked.id, ... FROM
    picked ON CONFLICT DO NOTHING RETURNING ...) SELECT picked.id, lease.id, <card> FROM picked
    LEFT JOIN lease JOIN task JOIN image``.

    No row: nothing to take. A row without a lease id: the worker's other claim took this task
    a moment earlier (the INSERT met the unique constraint), so the caller gives the slot back
    and picks again, as the other path does. The card's task and image columns are read from the
    statement's snapshot, in which the task row exists unchanged (only ``taken`` moves)."""
    key = (kind.value, dynamic)
    statement = _CLAIM_WITH_CARD.get(key)
    if statement is not None:
        return statement
    picked = _claim_statement("postgresql", kind, dynamic).cte("picked")
    row = select(picked.c.id, *bound_row(Assignment, _LEASE_FIELDS, "l_"))
    lease = (
        pg_insert(Assignment)
        .from_select(["task_id", *_LEASE_FIELDS], row)
        .on_conflict_do_nothing(constraint="uq_assignment_task_worker")
        .returning(col(Assignment.id), col(Assignment.task_id))
        .cte("lease")
    )
    statement = (
        select(picked.c.id, lease.c.id, *card_row.columns(worker="b_worker_id", since="l_since"))
        .select_from(
            picked.outerjoin(lease, lease.c.task_id == picked.c.id)
            .join(Task, col(Task.id) == picked.c.id)
            .join(Image, col(Image.id) == col(Task.image_id))
        )
        .add_cte(picked, lease)
    )
    _CLAIM_WITH_CARD[key] = hot(statement)
    return statement


_INSERT_LEASE = hot(insert(Assignment).returning(col(Assignment.id)))
_GIVE_BACK_SLOT = hot(update(Task).where(col(Task.id) == bindparam("task_id")).values(taken=col(Task.taken) - 1))
_RACED: Any = object()


@dataclass(slots=True)
class NewLease:
    """The assignment row a claim just inserted: a plain record (building an ORM object for
    it would cost more than the INSERT), read like an :class:`Assignment`."""

    id: int
    task_id: int
    worker_id: int
    project_id: int
    status: str
    leased_at: datetime
    expires_at: datetime
    chat_id: int | None = None
    message_id: int | None = None
    state_json: str | None = None
    card_row: tuple[Any, ...] | None = None  # the task's card, when the claim read it (card_row.columns)


def claim_in_project(
    session: Session,
    project: Project,
    worker_id: int,
    *,
    kind: TaskKind = TaskKind.NORMAL,
    now: datetime | None = None,
    chat_id: int | None = None,
    message_id: int | None = None,
    idle: bool = False,
    card_since: datetime,
) -> NewLease | None:
    """Lease one task of ``kind`` in ``project`` to the worker, or None when there is none.

    ``chat_id``/``message_id`` attach the lease to the message that will show it, when known.
    ``idle``: the task is leased by an answer for the next round, before the worker has seen
    it; it is held for ``idle_lease_seconds`` only, and the worker's first tap on it extends it
    to the full lease (:func:`extend`), so a worker who answers and leaves holds no slot long.
    ``card_since``: the start of the worker's day, from which the card counts their answers; on
    PostgreSQL the claim reads the task's card itself (``NewLease.card_row``).
    """
    now = now or utcnow()
    # Two claims of the same worker at once (two taps, two replicas on PostgreSQL): the pick's
    # "not seen by this worker" check reads the statement's snapshot, so both may pick one task.
    # The second lease INSERT then finds the first (ON CONFLICT DO NOTHING: no error, no
    # savepoint round trips on every tap), gives its slot back and picks again. SQLite claims
    # are serialised by its write lock and cannot race.
    for _ in range(3):
        lease = _claim_once(session, project, worker_id, kind, now, chat_id, message_id, idle, card_since)
        if lease is not _RACED:
            return lease
    return None


def _claim_once(
    session: Session,
    project: Project,
    worker_id: int,
    kind: TaskKind,
    now: datetime,
    chat_id: int | None,
    message_id: int | None,
    idle: bool,
    card_since: datetime,
) -> Any:
    """One pick and lease: the lease, None (nothing to do), or ``_RACED`` (pick again)."""
    dialect, dynamic = _dialect(session), project.confidence_target is not None
    params: dict[str, Any] = {
        "b_project_id": project.id,
        "b_worker_id": worker_id,
        "b_overlap": project.overlap,
        "b_min_overlap": project.min_overlap,
        "b_multiplier": _golden_multiplier(worker_id),
    }
    lease: dict[str, Any] = {
        "worker_id": worker_id,
        "project_id": project.id,
        "status": AssignmentStatus.LEASED.value,
        "leased_at": now,
        "expires_at": now + timedelta(seconds=lease_length(project, idle=idle)),
        "chat_id": chat_id,
        "message_id": message_id,
    }
    if dialect == "postgresql":
        params.update({f"l_{name}": value for name, value in lease.items()}, l_since=card_since)
        got = execute(session, _claim_with_card(kind, dynamic), params).first()
        if got is None:
            return None
        if got[1] is None:  # our other claim holds this task: its slot back, pick again
            execute(session, _GIVE_BACK_SLOT, {"task_id": got[0]})
            return _RACED
        return NewLease(id=got[1], task_id=got[0], card_row=tuple(got[2:]), **lease)
    # SQLite: claims are serialised by the write lock and cannot race; the card is read after
    task_id = execute(session, _claim_statement(dialect, kind, dynamic), params).scalar()
    if task_id is None:
        return None
    values = {"task_id": task_id, **lease}
    return NewLease(id=execute(session, _INSERT_LEASE, values).scalar_one(), **values)


def lease_length(project: Project, *, idle: bool = False) -> int:
    """Seconds a lease lasts: the full ``lease_seconds``, or the idle lease when it is shorter."""
    if idle and 0 < project.idle_lease_seconds < project.lease_seconds:
        return int(project.idle_lease_seconds)
    return int(project.lease_seconds)


_EXTEND = hot(
    update(Assignment)
    .where(
        col(Assignment.id) == bindparam("assignment_id"),
        col(Assignment.status) == AssignmentStatus.LEASED.value,
        col(Assignment.expires_at) > bindparam("now"),
        col(Assignment.expires_at) < bindparam("until"),
    )
    .values(expires_at=bindparam("until"))
)


def extend(session: Session, assignment_id: int, project: Project, now: datetime) -> None:
    """A tap on a live lease: it gets the full lease from now (an idle lease becomes a real one)."""
    until = now + timedelta(seconds=project.lease_seconds)
    execute(session, _EXTEND, {"assignment_id": assignment_id, "now": now, "until": until})


_REFRESH = hot(
    update(Assignment)
    .where(col(Assignment.id) == bindparam("assignment_id"), col(Assignment.status) == AssignmentStatus.LEASED.value)
    .values(expires_at=bindparam("until"))
)
_REVIVE = hot(
    update(Assignment)
    .where(col(Assignment.id) == bindparam("assignment_id"), col(Assignment.status) == AssignmentStatus.EXPIRED.value)
    .values(status=AssignmentStatus.LEASED.value, expires_at=bindparam("until"), closed_at=None)
)
_RETAKE_SLOT = hot(
    update(Task)
    .where(
        col(Task.id) == bindparam("task_id"),
        col(Task.status) == TaskStatus.OPEN.value,
        or_(col(Task.kind) != TaskKind.NORMAL.value, col(Task.taken) < bindparam("overlap")),
    )
    .values(taken=col(Task.taken) + 1)
)


def revive(session: Session, assignment_id: int, task_id: int, project: Project, now: datetime) -> bool:
    """A tap on a lapsed lease: take it back, if the task still has a free slot.

    A lapsed lease not yet swept still holds its slot: it is simply renewed. A swept one
    (``expired``) needs a slot again: the same conditional ``taken < overlap`` UPDATE as a claim
    takes it, then the assignment goes back to ``leased`` only if it is still ``expired``
    (a conditional UPDATE: of two racing taps one wins). Answering then closes the lease once,
    as always, so the answer is recorded and paid once. False: the slot is gone (the task was
    finished or filled by others meanwhile); the caller refuses the tap as expired.
    """
    until = now + timedelta(seconds=project.lease_seconds)
    params = {"assignment_id": assignment_id, "until": until}
    if execute(session, _REFRESH, params).rowcount == 1:
        return True
    if execute(session, _RETAKE_SLOT, {"task_id": task_id, "overlap": project.overlap}).rowcount != 1:
        return False
    if execute(session, _REVIVE, params).rowcount != 1:
        release_slot(session, task_id)
        return False
    return True


def claimable_projects(session: Session, project_id: int | None = None) -> list[Project]:
    """Active projects (read-only snapshots), or the given one if it is active."""
    return projects.active_snapshots(session, project_id)
