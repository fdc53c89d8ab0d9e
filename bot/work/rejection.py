"""Rejecting a cheater: their accepted answers become rejected and their pay is reversed.

Quality (``bot.tasks.quality``: settling tasks again, blocking the worker) and money
(``bot.wallet.ledger``: the reversal) in one transaction; this is the one place that needs both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import case, func, select, update
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.db import rowcount
from bot.tasks.models import Answer, AnswerStatus, Project, Task, TaskKind, TaskStatus
from bot.tasks.quality import BlockReason, Stage, block, settle_task, standing
from bot.wallet.ledger import reverse_answer

log = structlog.get_logger("crowdpin.quality")


@dataclass(slots=True)
class RejectReport:
    worker_id: int
    answers: int = 0  # answers turned from accepted to rejected now
    reversed: int = 0  # KRW taken back
    shortfall: int = 0  # KRW already withdrawn, that could not be taken back
    tasks_reopened: int = 0  # done tasks that need more answers again
    projects: list[int] = field(default_factory=list)


def reject_worker(
    session: Session,
    worker_id: int,
    *,
    project_id: int | None = None,
    reason: str = "",
    block_worker: bool = True,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RejectReport:
    """Reject every accepted answer of the worker (in one project or all) and reverse their pay.

    Idempotent: a second run finds no accepted answers and the ledger keys ``reversal:<answer>``
    make each reversal happen once. Affected tasks drop the rejected answers from their counts and
    results; a done task that no longer meets its overlap or confidence goes back to the pool.
    """
    now = now or utcnow()
    query = select(Answer).where(col(Answer.worker_id) == worker_id, col(Answer.status) == AnswerStatus.ACCEPTED.value)
    if project_id is not None:
        query = query.where(col(Answer.project_id) == project_id)
    answers = list(session.execute(query.order_by(col(Answer.id))).scalars())
    report = RejectReport(worker_id)
    touched: dict[int, int] = {}
    for done, answer in enumerate(answers, start=1):
        if progress is not None:
            progress(done, len(answers))
        changed = rowcount(
            session.execute(
                update(Answer)
                .where(col(Answer.id) == answer.id, col(Answer.status) == AnswerStatus.ACCEPTED.value)
                .values(status=AnswerStatus.REJECTED.value)
            )
        )
        if changed != 1:
            continue
        report.answers += 1
        if answer.reward > 0:
            result = reverse_answer(session, answer_id=answer.id, worker_id=worker_id, amount=answer.reward, reason=reason, now=now)
            report.reversed += result.reversed
            report.shortfall += result.shortfall
        touched[answer.task_id] = touched.get(answer.task_id, 0) + 1
        if answer.project_id not in report.projects:
            report.projects.append(answer.project_id)
    projects_by_id = {p.id: p for p in session.execute(select(Project).where(col(Project.id).in_(report.projects))).scalars()}
    for task_id, n in touched.items():
        task = session.get(Task, task_id)
        if task is None or task.kind != TaskKind.NORMAL:
            continue
        was_done = task.status == TaskStatus.DONE
        session.execute(
            update(Task)
            .where(col(Task.id) == task_id)
            .values(
                answers_count=case((col(Task.answers_count) >= n, col(Task.answers_count) - n), else_=0),
                taken=case((col(Task.taken) >= n, col(Task.taken) - n), else_=0),
            )
        )
        done = settle_task(session, projects_by_id[task.project_id], task_id, reopen=True)
        report.tasks_reopened += int(was_done and not done)
    if block_worker:
        for pid in report.projects if project_id is None else [project_id]:
            project = projects_by_id.get(pid) or session.get(Project, pid)
            if project is None:
                continue
            wp = standing(session, worker_id, project, now)
            if wp.stage != Stage.BLOCKED:
                block(session, wp, BlockReason.OPERATOR, now)
    log.warning(
        "quality.worker_rejected",
        worker_id=worker_id,
        project_id=project_id,
        answers=report.answers,
        reversed=report.reversed,
        shortfall=report.shortfall,
        reopened=report.tasks_reopened,
        reason=reason,
    )
    return report


def pending_rejection(session: Session, worker_id: int, project_id: int | None = None) -> tuple[int, int]:
    """(accepted answers, KRW paid for them) that :func:`reject_worker` would reject."""
    query = select(func.count(col(Answer.id)), func.coalesce(func.sum(col(Answer.reward)), 0)).where(
        col(Answer.worker_id) == worker_id, col(Answer.status) == AnswerStatus.ACCEPTED.value
    )
    if project_id is not None:
        query = query.where(col(Answer.project_id) == project_id)
    count, amount = session.execute(query).one()
    return int(count), int(amount)
