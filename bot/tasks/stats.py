"""Figures for operators: progress per project, a worker leaderboard and time series.

Shared by ``crowdpin admin stats`` (table and HTML report) and the ``/stats`` command in
Telegram, so both always show the same numbers. Every query is plain SQL that means the same on
SQLite and PostgreSQL: a median is read with ORDER BY ... OFFSET instead of an engine-specific
percentile function, and hour buckets are built from per-engine text formatting of UTC time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, case, func, select, type_coerce
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.tasks.models import Answer, AnswerStatus, Project, Task, TaskKind, TaskStatus
from bot.workers.models import Worker

SECONDS_BUCKETS: tuple[float, ...] = (2, 5, 10, 20, 40, 60, 120)
"""Upper bounds of the time-per-answer histogram; the last bucket is "over 120 s"."""


@dataclass(slots=True)
class ProjectProgress:
    id: int
    name: str
    type: str
    status: str
    price: int
    overlap: int
    tasks_total: int = 0  # normal tasks (golden and training ones are controls, not work)
    tasks_done: int = 0
    tasks_broken: int = 0
    control_tasks: int = 0
    answers: int = 0  # accepted answers, all kinds
    answers_last_hour: int = 0
    answers_24h: int = 0
    workers: int = 0
    earned: int = 0  # KRW credited for this project's answers
    median_seconds: float | None = None

    @property
    def percent_done(self) -> float:
        return 100.0 * self.tasks_done / self.tasks_total if self.tasks_total else 0.0

    @property
    def answers_per_hour_24h(self) -> float:
        return self.answers_24h / 24.0


@dataclass(slots=True)
class LeaderRow:
    worker_id: int
    name: str
    username: str | None
    answers: int
    earned: int
    golden_total: int
    golden_correct: int
    mean_seconds: float

    @property
    def golden_accuracy(self) -> float | None:
        return self.golden_correct / self.golden_total if self.golden_total else None


@dataclass(slots=True)
class Report:
    """Everything the HTML report draws."""

    generated_at: datetime
    projects: list[ProjectProgress]
    leaders: list[LeaderRow]
    hourly: list[tuple[datetime, int]]
    seconds_histogram: list[tuple[str, int]]
    target_answers: int = 0
    project_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reliability: list[Reliability] = field(default_factory=list)  # filled by add_reliability


@dataclass(slots=True)
class Reliability:
    """Exported confidence against observed accuracy on one project's golden tasks."""

    project_id: int
    project_name: str
    method: str  # the aggregation method the export would use
    bins: list[Any]  # calibration.Bin, 10 equal-width bins
    ece: float
    golden: int  # golden tasks scored (0: no curve, see ``note``)
    note: str = ""  # why there is no curve


def _accepted(project_id: int | None) -> list[Any]:
    where: list[Any] = [col(Answer.status) == AnswerStatus.ACCEPTED.value]
    if project_id is not None:
        where.append(col(Answer.project_id) == project_id)
    return where


def median_seconds(session: Session, project_id: int | None = None) -> float | None:
    """Median time per answer, read with two ORDER BY/OFFSET probes (same on both engines)."""
    where = _accepted(project_id)
    n = int(session.execute(select(func.count(col(Answer.id))).where(*where)).scalar_one())
    if n == 0:
        return None
    ordered = select(col(Answer.seconds)).where(*where).order_by(col(Answer.seconds))
    lo = session.execute(ordered.offset((n - 1) // 2).limit(1)).scalar_one()
    if n % 2:
        return float(lo)
    hi = session.execute(ordered.offset(n // 2).limit(1)).scalar_one()
    return (float(lo) + float(hi)) / 2.0


def project_progress(session: Session, project_id: int | None = None, *, now: datetime | None = None) -> list[ProjectProgress]:
    now = now or utcnow()
    query = select(Project).order_by(col(Project.id))
    if project_id is not None:
        query = query.where(col(Project.id) == project_id)
    out = {
        p.id: ProjectProgress(id=p.id, name=p.name, type=p.type, status=p.status, price=p.price, overlap=p.overlap)
        for p in session.execute(query).scalars()
    }
    if not out:
        return []
    ids = list(out)
    task_rows = session.execute(
        select(col(Task.project_id), col(Task.kind), col(Task.status), func.count(col(Task.id)))
        .where(col(Task.project_id).in_(ids))
        .group_by(col(Task.project_id), col(Task.kind), col(Task.status))
    )
    for pid, kind, status, n in task_rows:
        if status == TaskStatus.LOADING.value:
            continue  # not part of the project until its load finishes
        item = out[pid]
        if kind != TaskKind.NORMAL.value:
            item.control_tasks += n
            continue
        item.tasks_total += n
        if status == TaskStatus.DONE.value:
            item.tasks_done += n
        elif status == TaskStatus.BROKEN.value:
            item.tasks_broken += n
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(hours=24)
    answer_rows = session.execute(
        select(
            col(Answer.project_id),
            func.count(col(Answer.id)),
            func.coalesce(func.sum(col(Answer.reward)), 0),
            func.sum(case((col(Answer.created_at) >= hour_ago, 1), else_=0)),
            func.sum(case((col(Answer.created_at) >= day_ago, 1), else_=0)),
            func.count(func.distinct(col(Answer.worker_id))),
        )
        .where(col(Answer.project_id).in_(ids), col(Answer.status) == AnswerStatus.ACCEPTED.value)
        .group_by(col(Answer.project_id))
    )
    for pid, n, earned, last_hour, last_day, n_workers in answer_rows:
        item = out[pid]
        item.answers, item.earned = int(n), int(earned or 0)
        item.answers_last_hour, item.answers_24h = int(last_hour or 0), int(last_day or 0)
        item.workers = int(n_workers)
        item.median_seconds = median_seconds(session, pid)
    return list(out.values())


def leaderboard(session: Session, project_id: int | None = None, *, limit: int = 20) -> list[LeaderRow]:
    golden = and_(col(Answer.is_golden).is_(True), col(Answer.correct).is_not(None))
    rows = session.execute(
        select(
            col(Answer.worker_id),
            col(Worker.name),
            col(Worker.username),
            func.count(col(Answer.id)).label("n"),
            func.coalesce(func.sum(col(Answer.reward)), 0),
            func.sum(case((golden, 1), else_=0)),
            func.sum(case((and_(golden, col(Answer.correct).is_(True)), 1), else_=0)),
            func.avg(col(Answer.seconds)),
        )
        .join(Worker, col(Worker.id) == col(Answer.worker_id))
        .where(*_accepted(project_id))
        .group_by(col(Answer.worker_id), col(Worker.name), col(Worker.username))
        .order_by(func.count(col(Answer.id)).desc(), col(Answer.worker_id))
        .limit(limit)
    )
    return [
        LeaderRow(
            worker_id=wid,
            name=name,
            username=username,
            answers=int(n),
            earned=int(earned or 0),
            golden_total=int(gt or 0),
            golden_correct=int(gc or 0),
            mean_seconds=float(mean or 0.0),
        )
        for wid, name, username, n, earned, gt, gc, mean in rows
    ]


def _hour_bucket(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", col(Answer.created_at)), "YYYY-MM-DD HH24")
    return func.substr(type_coerce(col(Answer.created_at), String), 1, 13)  # stored as UTC "YYYY-MM-DD HH:..."


def answers_per_hour(session: Session, project_id: int | None = None, *, since: datetime | None = None) -> list[tuple[datetime, int]]:
    """(hour start in UTC, accepted answers in that hour), oldest first; empty hours are absent."""
    bucket = _hour_bucket(session).label("bucket")
    where = _accepted(project_id)
    if since is not None:
        where.append(col(Answer.created_at) >= since)
    rows = session.execute(select(bucket, func.count(col(Answer.id))).where(*where).group_by(bucket).order_by(bucket))
    return [(datetime.strptime(b, "%Y-%m-%d %H").replace(tzinfo=UTC), int(n)) for b, n in rows]


def bucket_labels(bounds: Sequence[float] = SECONDS_BUCKETS) -> list[str]:
    labels, low = [], 0.0
    for high in bounds:
        labels.append(f"{low:g}–{high:g}s")
        low = high
    labels.append(f">{low:g}s")
    return labels


def seconds_histogram(session: Session, project_id: int | None = None, bounds: Sequence[float] = SECONDS_BUCKETS) -> list[tuple[str, int]]:
    """How many answers took each range of seconds (one CASE, counted by the database)."""
    index = case(*[(col(Answer.seconds) < high, i) for i, high in enumerate(bounds)], else_=len(bounds)).label("b")
    rows = dict(session.execute(select(index, func.count(col(Answer.id))).where(*_accepted(project_id)).group_by(index)).all())
    return [(label, int(rows.get(i, 0))) for i, label in enumerate(bucket_labels(bounds))]


def add_reliability(session: Session, report: Report, method: str = "auto") -> Report:
    """Adds the reliability curve of each project's golden tasks: each scored as if it were a
    normal task (its answers cut to a normal task's count, its truth held out) and calibrated
    without its own fold, so the curve checks the export's confidence on facts
    (``bot.tasks.aggregate.golden_reliability``). Kept out of :func:`report`: it refits the
    aggregation model a few times, which ``/stats`` in the chat should not wait for."""
    from bot.tasks import calibration
    from bot.tasks.aggregate import CALIBRATION_MIN_GOLDEN, CROWDKIT, golden_reliability

    if method.startswith(CROWDKIT):
        method = "auto"  # crowd-kit models are not calibrated by us: check what auto would export
    for p in report.projects:
        used, confidence, correct = golden_reliability(session, p.id, method)
        note = ""
        if used == "majority_vote":
            note = "majority vote: its confidence is a vote share, not a probability"
        elif not confidence:
            note = f"no curve until {CALIBRATION_MIN_GOLDEN} golden tasks have answers"
        report.reliability.append(
            Reliability(
                p.id,
                p.name,
                used,
                calibration.reliability(confidence, correct),
                calibration.ece(confidence, correct),
                len(confidence),
                note,
            )
        )
    return report


def report(session: Session, project_id: int | None = None, *, now: datetime | None = None, leaders: int = 20) -> Report:
    now = now or utcnow()
    projects = project_progress(session, project_id, now=now)
    target = sum((p.tasks_total - p.tasks_broken) * p.overlap for p in projects)
    return Report(
        generated_at=now,
        projects=projects,
        leaders=leaderboard(session, project_id, limit=leaders),
        hourly=answers_per_hour(session, project_id),
        seconds_histogram=seconds_histogram(session, project_id),
        target_answers=target,
        project_id=project_id,
    )
