"""Answering a task: record the answer, pay it, and lease the next task, in one transaction.

This is where the labeling domain (``bot.tasks``: leases, quality, settling a task) and the
money domain (``bot.wallet``: the ledger) meet; neither of those packages imports the other.
A tap on a label runs :func:`act_and_next`: it is the bot's hottest path, so it reads the
lease with its task, project and worker in one statement and claims the next task starting
from the project already in hand (see docs/performance.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, Insert, bindparam, insert, literal, null, select, union_all, update
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.db.hot import Carried, execute, hot, send
from bot.db.tables import bound_row, table
from bot.tasks import leasing, quality
from bot.tasks.magic_pin import PinRefusal, kept_mask
from bot.tasks.models import Answer, AnswerStatus, Assignment, AssignmentStatus, ProjectStatus, TaskKind, WorkerProject
from bot.tasks.projects import labels as project_labels
from bot.tasks.service import (
    AnswerOutcome,
    Lease,
    NoTask,
    NoTaskReason,
    Refusal,
    Submitted,
    check_lease,
    claim_next,
    close_lease,
    close_reported,
    close_skipped,
    open_lease,
    read_lease,
    revived,
    valid_value,
)
from bot.wallet.ledger import credit_earning
from bot.workers.models import WorkerStatus

_INSERT_ANSWER = hot(insert(Answer).returning(col(Answer.id)))
_ANSWER_FIELDS = (
    "task_id",
    "worker_id",
    "project_id",
    "reward",
    "value",
    "mask_rle",
    "box_json",
    "seconds",
    "is_golden",
    "correct",
    "status",
    "created_at",
)


def _close_and_record() -> tuple[Insert, CompoundSelect]:
    """PostgreSQL: close the lease and record the answer in one statement (one round trip less
    per tap). The answer is inserted from the rows the guarded UPDATE returned, so a lease that
    is no longer open (a double tap, a replay) records nothing and the statement returns no
    row: ``Refusal.ALREADY``, exactly as the two statements decide it. SQLite has no UPDATE
    inside WITH and keeps the two statements.

    The second form, for a normal task, also reads what settling the task needs (one more
    round trip less): the task's answers before this one with their workers' golden records
    (part 1) and this worker's record (part 2); part 0 is the new answer's id, if it was
    recorded. The new answer itself is not in the statement's snapshot: :func:`_record_and_read`
    adds its row from what was inserted."""
    closed = (
        update(Assignment)
        .where(col(Assignment.id) == bindparam("r_assignment_id"), col(Assignment.status) == AssignmentStatus.LEASED.value)
        .values(status=AssignmentStatus.ANSWERED.value, closed_at=bindparam("r_created_at"))
        .returning(col(Assignment.id))
        .cte("closed")
    )
    row = select(closed.c.id, *bound_row(Answer, _ANSWER_FIELDS, "r_"))
    record = insert(Answer).from_select(["assignment_id", *_ANSWER_FIELDS], row).returning(col(Answer.id))
    recorded = record.cte("recorded")
    wp = table(WorkerProject).c
    read = union_all(
        select(literal(0), recorded.c.id, null(), null(), null(), null()),
        quality.confidence_rows(bindparam("r_task_id"), literal(1), null()),
        select(literal(2), null(), null(), null(), wp.golden_correct, wp.golden_total).where(
            wp.worker_id == bindparam("r_worker_id"), wp.project_id == bindparam("r_project_id")
        ),
    )
    return hot(record.add_cte(closed)), hot(read)


_PG_RECORD, _PG_RECORD_AND_READ = _close_and_record()
_CLOSE_AND_RECORD = {"postgresql": _PG_RECORD}


def _record_and_read(session: Session, params: dict[str, Any]) -> tuple[int | None, list[quality.ConfidenceRow]]:
    """(the new answer's id or None, the task's answers with it) from one statement; ``params``
    is the answer's row under the statement's ``r_`` names."""
    answer_id, mine, rows = None, None, []
    for part, new_id, value, mask_rle, golden_correct, golden_total in execute(session, _PG_RECORD_AND_READ, params).all():
        if part == 0:
            answer_id = new_id
        elif part == 1:
            rows.append((value, mask_rle, golden_correct, golden_total))
        else:
            mine = (golden_correct, golden_total)
    rows.append((params["r_value"], params["r_mask_rle"], *(mine or (None, None))))
    return answer_id, rows


def submit_answer(
    session: Session,
    worker_id: int,
    assignment_id: int,
    value: str,
    *,
    mask_rle: str | None = None,
    box_json: str | None = None,
    now: datetime | None = None,
    tz: str = "Asia/Seoul",
) -> Submitted | Refusal:
    """Record the answer of one assignment and pay for it, exactly once."""
    now = now or utcnow()
    lease = open_lease(session, worker_id, assignment_id, now)
    if isinstance(lease, Refusal):
        return lease
    return _submit(session, lease, value, mask_rle, now, tz, box_json)


def _submit(
    session: Session, lease: Lease, value: str, mask_rle: str | None, now: datetime, tz: str, box_json: str | None = None
) -> Submitted | Refusal:
    project, task, worker_id = lease.project, lease.task, lease.worker_id
    if not valid_value(project, value, mask_rle, box_json):
        return Refusal.INVALID
    merged = _CLOSE_AND_RECORD.get(session.get_bind().dialect.name)
    read: list[quality.ConfidenceRow] | None = None
    if merged is None and not close_lease(session, lease.assignment_id, AssignmentStatus.ANSWERED, now):
        return Refusal.ALREADY
    paid = quality.pays(session, project, task, worker_id)  # not training, not the exam
    reward = project.price if paid else 0
    correct = None if task.golden is None else (value == task.golden)
    seconds = max(0.0, (now - lease.leased_at).total_seconds())
    row = {
        "assignment_id": lease.assignment_id,
        "task_id": task.id,
        "worker_id": worker_id,
        "project_id": project.id,
        "reward": reward,
        "value": value,
        "mask_rle": mask_rle,
        "box_json": box_json,
        "seconds": seconds,
        "is_golden": task.kind == TaskKind.GOLDEN,
        "correct": correct,
        "status": AnswerStatus.ACCEPTED.value,
        "created_at": now,
    }
    if merged is not None:
        params = {f"r_{name}": v for name, v in row.items()}
        if task.kind == TaskKind.NORMAL:
            answer_id, read = _record_and_read(session, params)
        else:
            answer_id = execute(session, merged, params).scalar()
        if answer_id is None:  # the lease was closed already: nothing recorded
            return Refusal.ALREADY
    else:
        answer_id = execute(session, _INSERT_ANSWER, row).scalar_one()
    # PostgreSQL: the task's settlement and the payment ride on the counters' UPDATE (one round
    # trip for the three writes; nothing reads them before it). SQLite sends each on its own.
    carry: list[Carried] | None = [] if merged is not None else None
    task_done = False
    if task.kind == TaskKind.NORMAL:  # count it and settle: fixed or dynamic overlap
        task_done = quality.settle_task(session, project, task.id, counted=True, carry=carry, rows=read)
    if reward:
        credit_earning(session, worker_id=worker_id, answer_id=answer_id, amount=reward, hold_days=project.hold_days, now=now, carry=carry)
    after = quality.after_answer(session, project, task, worker_id, correct, seconds, now=now, tz=tz, carry=carry)
    if carry:  # the counters were not updated (a training answer): the writes go on their own
        send(session, carry)
    return Submitted(
        answer_id=answer_id,
        reward=reward,
        task_done=task_done,
        correct=correct,
        notice=after.notice,
        training_feedback=after.training_feedback,
    )


def act_and_next(
    session: Session,
    worker_id: int,
    assignment_id: int,
    action: str,
    value: str = "",
    *,
    lang: str = "ko",
    chat_id: int | None = None,
    message_id: int | None = None,
    mask_rle: str | None = None,
    box_json: str | None = None,
    now: datetime | None = None,
    tz: str = "Asia/Seoul",
) -> AnswerOutcome:
    """Answer / skip / report an assignment and lease the next task, in one transaction.

    The next lease is attached to the message being edited in place, so showing it needs no
    second round trip to the database. A refused action leases nothing.

    This is the bot's hottest path (every tap): the assignment, its task, project and worker
    are read in one statement, and the next claim starts from the project already in hand.
    """
    now = now or utcnow()
    lease = read_lease(session, assignment_id)
    if action == "label":  # value is the index of the tapped label button
        options = project_labels(lease.project) if lease is not None else []
        index = int(value) if value.lstrip("-").isdigit() else -1
        value = options[index] if 0 <= index < len(options) else f"#{value}"
        action = "answer"
    if action not in ("answer", "skip", "report"):
        raise ValueError(f"unknown action {action!r}")
    refusal = check_lease(lease, worker_id, now)
    if refusal == Refusal.EXPIRED and lease is not None and revived(session, lease, now):
        refusal = None
    if refusal is not None:
        return AnswerOutcome(refusal, None)
    assert lease is not None
    result: Submitted | Refusal | bool
    if action == "answer":
        result = _submit(session, lease, value, mask_rle, now, tz, box_json)
    elif action == "skip":
        result = close_skipped(session, lease, now)
    else:
        result = close_reported(session, lease, value or "broken", now)
    if isinstance(result, Refusal):
        return AnswerOutcome(result, None)
    if lease.worker_status == WorkerStatus.BANNED:
        return AnswerOutcome(result, NoTask(NoTaskReason.BANNED, lease.worker_reason))
    if message_id is None:
        chat_id = None  # a lease is attached to a message only once it is shown in one
    leasing.expire_leases(session, now)
    here = [lease.project] if lease.project.status == ProjectStatus.ACTIVE else []
    # the next task is leased before the worker sees it: an idle lease until they tap it
    nxt = claim_next(session, worker_id, here, lang, now, tz, chat_id, message_id, idle=True)
    if isinstance(nxt, NoTask) and nxt.reason == NoTaskReason.NONE_LEFT:
        others = [p for p in leasing.claimable_projects(session) if p.id != lease.project.id]
        nxt = claim_next(session, worker_id, others, lang, now, tz, chat_id, message_id, idle=True)
    return AnswerOutcome(result, nxt)


def keep_and_next(
    session: Session,
    worker_id: int,
    assignment_id: int,
    v: int,
    *,
    lang: str = "ko",
    chat_id: int | None = None,
    message_id: int | None = None,
    now: datetime | None = None,
    tz: str = "Asia/Seoul",
) -> AnswerOutcome:
    """Pick: answer "mask" with the candidate ``v`` names (``magic_pin.pick_value(rev, i)``: the
    one shown as number i + 1, or Keep for i = 0), pay, and lease the next task, in one transaction.

    A second pick finds the assignment answered (``Refusal.ALREADY``) and pays nothing; a
    refusal particular to magic pin comes back as ``AnswerOutcome(PinRefusal, None)``.
    """
    now = now or utcnow()
    kept = kept_mask(session, worker_id, assignment_id, v, now=now)
    if isinstance(kept, (Refusal, PinRefusal)):  # (both are str enums: test them first)
        return AnswerOutcome(kept, None)
    return act_and_next(
        session,
        worker_id,
        assignment_id,
        "answer",
        "mask",
        lang=lang,
        chat_id=chat_id,
        message_id=message_id,
        mask_rle=kept,
        now=now,
        tz=tz,
    )
