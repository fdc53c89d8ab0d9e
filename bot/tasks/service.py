"""The worker loop as domain operations: next task, answer, skip, report.

Each function runs inside one transaction (the caller's session) and returns plain data, so the
Telegram layer only renders and the admin CLI, tests and benchmarks can drive the same loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select, update
from sqlmodel import Session, col

from bot.clock import day_start, utcnow
from bot.db.hot import execute, hot
from bot.tasks import card_row, leasing, projects, quality
from bot.tasks.models import (
    BOX_VALUES,
    BOX_WRONG_BOX,
    CONFIRM_VALUES,
    PIN_MASK,
    PIN_NONE,
    Assignment,
    AssignmentStatus,
    Image,
    ProblemReport,
    Project,
    ProjectType,
    Task,
    TaskFacts,
    TaskStatus,
)
from bot.tasks.projects import labels as project_labels
from bot.workers.models import Worker, WorkerStatus

if TYPE_CHECKING:
    from bot.tasks.magic_pin import PinRefusal

REPORTS_TO_BREAK = 2


@dataclass(slots=True)
class TaskCard:
    """Everything needed to show one leased task on a phone."""

    assignment_id: int
    task_id: int
    project_id: int
    project_type: str
    kind: str
    question: str
    labels: list[str]
    image_id: int
    image_sha256: str
    image_path: str
    phone_path: str | None
    file_id: str | None
    width: int
    height: int
    prelabel: str | None
    mask_rle: str | None
    message_id: int | None
    state: dict = field(default_factory=dict)
    done_today: int = 0
    earned_today: int = 0


class NoTaskReason(StrEnum):
    NONE_LEFT = "none_left"
    BANNED = "banned"
    NOT_REGISTERED = "not_registered"
    QUALITY = "quality"  # a quality rule or stage keeps the worker out; see ``notice``


@dataclass(slots=True)
class NoTask:
    reason: NoTaskReason
    detail: str | None = None
    notice: quality.Notice | None = None  # with reason QUALITY: what to tell the worker


class Refusal(StrEnum):
    UNKNOWN = "unknown"  # no such assignment (forged or from another database)
    NOT_YOURS = "not_yours"
    ALREADY = "already"  # answered, skipped or reported before
    EXPIRED = "expired"
    INVALID = "invalid"  # a value that is not one of the offered choices


@dataclass(slots=True)
class Submitted:
    answer_id: int
    reward: int
    task_done: bool
    correct: bool | None = None
    notice: quality.Notice | None = None  # a rule triggered, an exam ended... (i18n key + params)
    training_feedback: quality.TrainingFeedback | None = None  # the right answer after a training task


# The task, its image and the worker's progress today (the caption), in one statement.
_CARD_ROW = hot(select(*card_row.columns()).join(Image, col(Image.id) == col(Task.image_id)).where(col(Task.id) == bindparam("task_id")))


def card_for(
    session: Session,
    assignment: Assignment | leasing.NewLease,
    lang: str,
    now: datetime,
    tz: str = "Asia/Seoul",
    project: Project | None = None,
) -> TaskCard:
    row = assignment.card_row if isinstance(assignment, leasing.NewLease) else None  # the claim read it (PostgreSQL)
    if row is None:
        params = {"task_id": assignment.task_id, "worker_id": assignment.worker_id, "since": day_start(now, tz)}
        row = execute(session, _CARD_ROW, params).one()
    if project is None or project.id != assignment.project_id:
        project = projects.read(session, assignment.project_id)
    assert project is not None and assignment.id is not None
    done, earned = int(row[12]), int(row[13])
    question = (project.question_en if lang == "en" else project.question_ko) or project.question_ko or project.question_en
    return TaskCard(
        assignment_id=assignment.id,
        task_id=row[0],
        project_id=assignment.project_id,  # the project's id (read above if it was not in hand)
        project_type=project.type,
        kind=row[1],
        question=question,
        labels=project_labels(project),
        image_id=row[5],
        image_sha256=row[6],
        image_path=row[7],
        phone_path=row[8],
        file_id=row[9],
        width=row[10],
        height=row[11],
        prelabel=row[2],
        mask_rle=row[3],
        message_id=assignment.message_id,
        state=json.loads(assignment.state_json) if assignment.state_json else {},
        done_today=done,
        earned_today=earned,
    )


_WORKER_STATUS = hot(select(col(Worker.status), col(Worker.status_reason)).where(col(Worker.id) == bindparam("worker_id")))


def next_task(
    session: Session,
    worker_id: int,
    *,
    lang: str = "ko",
    project_id: int | None = None,
    now: datetime | None = None,
    tz: str = "Asia/Seoul",
    check_current: bool = True,
    chat_id: int | None = None,
    message_id: int | None = None,
) -> TaskCard | NoTask:
    """The worker's current lease if any, else a new one; ``NoTask`` says why there is none.

    ``check_current=False`` skips looking for an open lease, for callers that just closed the
    worker's only one (a worker holds one lease at a time: claims return it first).
    ``chat_id``/``message_id``: the message that will show a new lease (edited in place).
    """
    now = now or utcnow()
    found = execute(session, _WORKER_STATUS, {"worker_id": worker_id}).first()
    if found is None:
        return NoTask(NoTaskReason.NOT_REGISTERED)
    if found[0] == WorkerStatus.BANNED:
        return NoTask(NoTaskReason.BANNED, found[1])
    leasing.expire_leases(session, now)
    current = leasing.active_lease(session, worker_id, now, project_id) if check_current else None
    if current is not None:  # shown again: a lease held idle becomes a full one
        project = projects.read(session, current.project_id)
        if project is not None and current.id is not None:
            leasing.extend(session, current.id, project, now)
        return card_for(session, current, lang, now, tz)
    return claim_next(session, worker_id, leasing.claimable_projects(session, project_id), lang, now, tz, chat_id, message_id)


def claim_next(
    session: Session,
    worker_id: int,
    candidates: list[Project],
    lang: str,
    now: datetime,
    tz: str,
    chat_id: int | None,
    message_id: int | None,
    *,
    idle: bool = False,
) -> TaskCard | NoTask:
    """The first task any of ``candidates`` has for the worker. ``idle``: leased by an answer
    for the next round (see ``leasing.claim_in_project``)."""
    notices: list[quality.Notice] = []
    for project in candidates:
        assignment = quality.claim(session, project, worker_id, now=now, tz=tz, chat_id=chat_id, message_id=message_id, idle=idle)
        if isinstance(assignment, quality.Notice):
            notices.append(assignment)
        elif assignment is not None:
            return card_for(session, assignment, lang, now, tz, project)
    if notices:
        return NoTask(NoTaskReason.QUALITY, notices[0].key, notices[0])
    return NoTask(NoTaskReason.NONE_LEFT)


def valid_value(project: Project, value: str, mask_rle: str | None, box_json: str | None = None) -> bool:
    if box_json is not None and not (project.type == ProjectType.CONFIRM_BOX and value == BOX_WRONG_BOX):
        return False  # a drawn box is the fix of a wrong box, nothing else
    if project.type == ProjectType.CLASSIFY:
        return value in project_labels(project)
    if project.type == ProjectType.CONFIRM_MASK:
        return value in CONFIRM_VALUES
    if project.type == ProjectType.MAGIC_PIN:
        return value == PIN_NONE or (value == PIN_MASK and bool(mask_rle))
    if project.type == ProjectType.CONFIRM_BOX:
        return value in BOX_VALUES
    return False


@dataclass(slots=True)
class Lease:
    """One assignment with what acting on it needs, read in a single statement."""

    assignment_id: int
    worker_id: int
    status: str
    expires_at: datetime
    leased_at: datetime
    task: TaskFacts
    project: Project
    worker_status: str
    worker_reason: str | None


_LEASE = hot(
    select(
        col(Assignment.id),
        col(Assignment.worker_id),
        col(Assignment.status),
        col(Assignment.expires_at),
        col(Assignment.leased_at),
        col(Task.id),
        col(Task.kind),
        col(Task.golden),
        col(Task.explanation),
        col(Worker.status),
        col(Worker.status_reason),
        *projects.PROJECT_COLUMNS,
    )
    .join(Task, col(Task.id) == col(Assignment.task_id))
    .join(Project, col(Project.id) == col(Assignment.project_id))
    .join(Worker, col(Worker.id) == col(Assignment.worker_id))
    .where(col(Assignment.id) == bindparam("assignment_id"))
)


def read_lease(session: Session, assignment_id: int) -> Lease | None:
    row = execute(session, _LEASE, {"assignment_id": assignment_id}).first()
    if row is None:
        return None
    return Lease(
        assignment_id=row[0],
        worker_id=row[1],
        status=row[2],
        expires_at=row[3],
        leased_at=row[4],
        task=TaskFacts(row[5], row[6], row[7], row[8]),
        worker_status=row[9],
        worker_reason=row[10],
        project=projects.snapshot(row[11:]),
    )


def _open_assignment(session: Session, worker_id: int, assignment_id: int, now: datetime) -> Assignment | Refusal:
    """The ORM row of a lease the worker may act on (magic pin keeps its state in it).

    Any tap on the lease extends it to the full lease; a tap on a lapsed one takes it back if
    the task still has a free slot (``leasing.revive``)."""
    assignment = session.get(Assignment, assignment_id)
    refusal = check_lease(assignment, worker_id, now)
    if refusal is not None and refusal != Refusal.EXPIRED:
        return refusal
    assert assignment is not None and assignment.id is not None
    project = projects.read(session, assignment.project_id)
    assert project is not None
    if refusal == Refusal.EXPIRED:
        if not leasing.revive(session, assignment.id, assignment.task_id, project, now):
            return refusal
    else:
        leasing.extend(session, assignment.id, project, now)
    session.refresh(assignment)
    return assignment


def check_lease(lease: Lease | Assignment | None, worker_id: int, now: datetime) -> Refusal | None:
    """Why the worker may not act on this lease now, or None."""
    if lease is None:
        return Refusal.UNKNOWN
    if lease.worker_id != worker_id:
        return Refusal.NOT_YOURS
    if lease.status == AssignmentStatus.EXPIRED:
        return Refusal.EXPIRED  # swept back to the pool; ``revived`` may take it back
    if lease.status != AssignmentStatus.LEASED:
        return Refusal.ALREADY
    if lease.expires_at <= now:
        return Refusal.EXPIRED
    return None


def revived(session: Session, lease: Lease, now: datetime) -> bool:
    """A tap on a lapsed lease is still accepted, once, if the task has a free slot."""
    if not leasing.revive(session, lease.assignment_id, lease.task.id, lease.project, now):
        return False
    lease.status = AssignmentStatus.LEASED.value
    return True


def open_lease(session: Session, worker_id: int, assignment_id: int, now: datetime) -> Lease | Refusal:
    lease = read_lease(session, assignment_id)
    refusal = check_lease(lease, worker_id, now)
    if refusal == Refusal.EXPIRED and lease is not None and revived(session, lease, now):
        refusal = None
    if refusal is not None:
        return refusal
    assert lease is not None
    return lease


# Core statements on the session's connection: the ORM's execute path (and its synchronisation
# of loaded objects on UPDATE) costs several times the statement itself on this hot path.
_CLOSE = hot(
    update(Assignment)
    .where(col(Assignment.id) == bindparam("assignment_id"), col(Assignment.status) == AssignmentStatus.LEASED.value)
    .values(status=bindparam("status"), closed_at=bindparam("now"))
)


def close_lease(session: Session, assignment_id: int, status: AssignmentStatus, now: datetime) -> bool:
    """Leased -> ``status`` exactly once; the WHERE clause is the double-tap guard."""
    result = execute(session, _CLOSE, {"assignment_id": assignment_id, "status": status.value, "now": now})
    return result.rowcount == 1


def skip(session: Session, worker_id: int, assignment_id: int, *, now: datetime | None = None) -> bool | Refusal:
    now = now or utcnow()
    lease = open_lease(session, worker_id, assignment_id, now)
    if isinstance(lease, Refusal):
        return lease
    return close_skipped(session, lease, now)


def close_skipped(session: Session, lease: Lease, now: datetime) -> bool | Refusal:
    if not close_lease(session, lease.assignment_id, AssignmentStatus.SKIPPED, now):
        return Refusal.ALREADY
    leasing.release_slot(session, lease.task.id)
    assert lease.project.id is not None
    quality.after_skip(session, lease.project.id, lease.worker_id, now=now)  # a pause shows on the next claim
    return True


def report_problem(
    session: Session, worker_id: int, assignment_id: int, reason: str = "broken", *, now: datetime | None = None
) -> bool | Refusal:
    """The image is broken or offensive: the worker moves on, enough reports retire the task."""
    now = now or utcnow()
    lease = open_lease(session, worker_id, assignment_id, now)
    if isinstance(lease, Refusal):
        return lease
    return close_reported(session, lease, reason, now)


def close_reported(session: Session, lease: Lease, reason: str, now: datetime) -> bool | Refusal:
    if not close_lease(session, lease.assignment_id, AssignmentStatus.REPORTED, now):
        return Refusal.ALREADY
    task_id = lease.task.id
    leasing.release_slot(session, task_id)
    session.add(ProblemReport(task_id=task_id, worker_id=lease.worker_id, reason=reason[:32], created_at=now))
    session.flush()
    reports = session.execute(select(func.count(col(ProblemReport.id))).where(col(ProblemReport.task_id) == task_id)).scalar_one()
    if reports >= min(REPORTS_TO_BREAK, lease.project.overlap):
        session.execute(update(Task).where(col(Task.id) == task_id, col(Task.status) == TaskStatus.OPEN).values(status=TaskStatus.BROKEN))
    return True


_ATTACH = hot(
    update(Assignment)
    .where(col(Assignment.id) == bindparam("assignment_id"))
    .values(chat_id=bindparam("chat_id"), message_id=bindparam("message_id"))
)


def attach_message(session: Session, assignment_id: int, chat_id: int, message_id: int) -> None:
    """Remember which chat message shows the lease, so the next task can edit it in place."""
    execute(session, _ATTACH, {"assignment_id": assignment_id, "chat_id": chat_id, "message_id": message_id})


def remember_file_id(session: Session, image_id: int, file_id: str) -> None:
    session.execute(update(Image).where(col(Image.id) == image_id, col(Image.tg_file_id).is_(None)).values(tg_file_id=file_id))


def remember_phone_path(session: Session, image_id: int, phone_path: str) -> None:
    session.execute(update(Image).where(col(Image.id) == image_id).values(phone_path=phone_path))


def save_state(session: Session, assignment_id: int, state: dict) -> None:
    session.execute(
        update(Assignment).where(col(Assignment.id) == assignment_id).values(state_json=json.dumps(state, separators=(",", ":")))
    )


@dataclass(slots=True)
class AnswerOutcome:
    """Result of "answer, then show the next task" done in one transaction."""

    result: Submitted | Refusal | PinRefusal | bool  # PinRefusal: a magic-pin Keep refused
    next: TaskCard | NoTask | None
