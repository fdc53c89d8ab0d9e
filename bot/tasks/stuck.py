"""Batches that finish: tasks that cannot reach their overlap, and closing a batch by hand.

A task waits for ``overlap`` answers (or, with dynamic overlap, for its confidence target). When
blocked or departed workers leave fewer eligible workers than it still needs, it would stay on
offer forever and the project would never finish. :func:`sweep` finds such tasks:

* *eligible* workers are those with a standing in the project that may still answer (in work,
  training or exam, or failed with exam attempts and time left), seen within
  ``stuck_after_seconds`` (a worker unseen longer has left), who have never been handed the task;
* a task *cannot fill* when its live leases plus its eligible workers are fewer than the
  answers it still needs;
* such a task is finished with the answers it has once its **aggregated** confidence (the
  export's model, ``bot.tasks.aggregate``) reaches the project's ``confidence_target`` — dynamic
  overlap's rule — or ``FINISH_CONFIDENCE`` for a project with a fixed overlap; otherwise it is
  reported as stuck, with the reason, in ``crowdpin admin stats``.

:func:`finish_project` (``crowdpin admin project finish``) closes a batch: no more tasks are
handed out, live leases end, every task with answers is finished with what it has, and the
results are aggregated as the export will aggregate them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.db import rowcount
from bot.tasks import aggregate, leasing
from bot.tasks.models import (
    Assignment,
    AssignmentStatus,
    Project,
    ProjectStatus,
    Task,
    TaskKind,
    TaskStatus,
    WorkerProject,
)

log = structlog.get_logger("crowdpin.quality")

FINISH_CONFIDENCE = 0.9  # a stuck task of a fixed-overlap project is finished at this confidence
_ACTIVE_STAGES = ("work", "training", "exam")


@dataclass(slots=True)
class StuckTask:
    task_id: int
    external_id: str
    answers: int
    needed: int  # answers still missing to reach the overlap
    eligible: int  # workers present and not yet handed this task
    confidence: float | None  # aggregated confidence of the answers so far
    reason: str  # "no_workers": nobody may answer it; "few_workers": fewer than it needs


@dataclass(slots=True)
class Sweep:
    project_id: int
    finished: list[int] = field(default_factory=list)
    stuck: list[StuckTask] = field(default_factory=list)


def eligible_workers(session: Session, project: Project, now: datetime) -> set[int]:
    """Workers who may still answer in the project and were seen within ``stuck_after_seconds``."""
    since = now - timedelta(seconds=project.stuck_after_seconds)
    rows = session.execute(
        select(col(WorkerProject.worker_id), col(WorkerProject.stage), col(WorkerProject.exam_attempts)).where(
            col(WorkerProject.project_id) == project.id, col(WorkerProject.updated_at) >= since
        )
    ).all()
    out = set()
    for worker_id, stage, attempts in rows:
        if stage in _ACTIVE_STAGES:
            out.add(int(worker_id))
        elif stage == "failed" and (project.exam_max_attempts <= 0 or attempts < project.exam_max_attempts):
            out.add(int(worker_id))
    return out


def _short(session: Session, project: Project, now: datetime) -> list[tuple[int, str, int, int, int]]:
    """(task id, external id, answers, still needed, eligible) of open normal tasks that cannot fill."""
    tasks = session.execute(
        select(col(Task.id), col(Task.external_id), col(Task.answers_count), col(Task.taken)).where(
            col(Task.project_id) == project.id, col(Task.kind) == TaskKind.NORMAL.value, col(Task.status) == TaskStatus.OPEN.value
        )
    ).all()
    if not tasks:
        return []
    present = eligible_workers(session, project, now)
    handed: Counter[int] = Counter()
    if present:
        for task_id, worker_id in session.execute(
            select(col(Assignment.task_id), col(Assignment.worker_id)).where(col(Assignment.project_id) == project.id)
        ):
            if int(worker_id) in present:
                handed[int(task_id)] += 1
    live_leases: Counter[int] = Counter(
        int(task_id)
        for (task_id,) in session.execute(
            select(col(Assignment.task_id)).where(
                col(Assignment.project_id) == project.id,
                col(Assignment.status) == AssignmentStatus.LEASED.value,
                col(Assignment.expires_at) > now,
            )
        )
    )
    out = []
    for task_id, external_id, answers, _taken in tasks:
        needed = project.overlap - int(answers)
        live = live_leases[int(task_id)]  # lapsed leases not yet swept hold no one
        eligible = len(present) - handed[int(task_id)]
        if needed > 0 and live + eligible < needed:
            out.append((int(task_id), str(external_id), int(answers), needed, max(0, eligible)))
    return out


def sweep(session: Session, project: Project, *, now: datetime | None = None, finish: bool = True) -> Sweep:
    """Find the project's tasks that cannot fill; finish those confident enough (``finish``)."""
    assert project.id is not None
    now = now or utcnow()
    result = Sweep(project.id)
    if project.stuck_after_seconds <= 0 or project.status != ProjectStatus.ACTIVE:
        return result
    short = _short(session, project, now)
    if not short:
        return result
    confidence = {r.task_id: r.confidence for r in aggregate.aggregate_project(session, project.id) if r.n_answers}
    target = project.confidence_target if project.confidence_target is not None else FINISH_CONFIDENCE
    for task_id, external_id, answers, needed, eligible in short:
        conf = confidence.get(task_id)
        if finish and conf is not None and answers >= max(1, project.min_overlap) and conf >= target:
            done = session.execute(
                update(Task).where(col(Task.id) == task_id, col(Task.status) == TaskStatus.OPEN.value).values(status=TaskStatus.DONE.value)
            )
            if rowcount(done) == 1:
                result.finished.append(task_id)
                continue
        reason = "no_workers" if eligible == 0 else "few_workers"
        result.stuck.append(StuckTask(task_id, external_id, answers, needed, eligible, conf, reason))
    if result.finished:
        log.info("quality.stuck_finished", project_id=project.id, tasks=len(result.finished), stuck=len(result.stuck))
    return result


def sweep_all(session: Session, *, now: datetime | None = None) -> list[Sweep]:
    """:func:`sweep` over every active project (the bot's ``batches`` job). Lapsed leases are
    returned to the pool first: claims sweep them, but at the end of a batch nobody claims."""
    now = now or utcnow()
    leasing.expire_leases(session, now, force=True)
    projects = session.execute(select(Project).where(col(Project.status) == ProjectStatus.ACTIVE.value)).scalars().all()
    return [sweep(session, p, now=now) for p in projects]


@dataclass(slots=True)
class Finished:
    project_id: int
    leases_ended: int
    tasks_finished: int  # open tasks with answers, finished with what they have
    tasks_unanswered: int  # open tasks without a single answer (no result)
    labelled: int  # tasks with an aggregated label
    mean_confidence: float | None


def finish_project(session: Session, project: Project, *, now: datetime | None = None) -> Finished:
    """Close the batch: stop handing out tasks, end live leases, finish tasks with what they have."""
    assert project.id is not None
    now = now or utcnow()
    project.status = ProjectStatus.CLOSED.value
    session.add(project)
    session.flush()
    ended = rowcount(
        session.execute(
            update(Assignment)
            .where(col(Assignment.project_id) == project.id, col(Assignment.status) == AssignmentStatus.LEASED.value)
            .values(status=AssignmentStatus.EXPIRED.value, closed_at=now)
        )
    )
    session.execute(update(Task).where(col(Task.project_id) == project.id).values(taken=col(Task.answers_count)))
    finished = rowcount(
        session.execute(
            update(Task)
            .where(
                col(Task.project_id) == project.id,
                col(Task.kind) == TaskKind.NORMAL.value,
                col(Task.status) == TaskStatus.OPEN.value,
                col(Task.answers_count) > 0,
            )
            .values(status=TaskStatus.DONE.value)
        )
    )
    unanswered = session.execute(
        select(col(Task.id)).where(
            col(Task.project_id) == project.id, col(Task.kind) == TaskKind.NORMAL.value, col(Task.status) == TaskStatus.OPEN.value
        )
    ).all()
    results = [r for r in aggregate.aggregate_project(session, project.id) if r.label is not None]
    mean = sum(r.confidence for r in results) / len(results) if results else None
    log.info("quality.project_finished", project_id=project.id, leases_ended=ended, finished=finished, unanswered=len(unanswered))
    return Finished(project.id, int(ended or 0), int(finished or 0), len(unanswered), len(results), mean)
