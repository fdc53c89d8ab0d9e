"""Who hears about a batch: everyone, the workers allowed to work on the project, or the
recently active. Only ``active`` workers are ever chosen: a banned worker must not be nagged
and an unreachable one (blocked the bot) cannot be reached until they write again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Select, and_, exists, func, not_, select
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.tasks.models import Project, WorkerProject
from bot.workers.models import Worker, WorkerStatus

Kind = Literal["all", "qualified", "active-days"]
SPEC_HELP = "all | qualified | active-days:N"
# Stages in which a worker may not take this project's tasks (see WorkerProject.stage).
_EXCLUDED_STAGES = ("blocked", "failed")


class AudienceError(ValueError):
    """An audience spec that does not parse (the CLI shows the message as is)."""


@dataclass(frozen=True, slots=True)
class Audience:
    kind: Kind
    days: int = 0

    @classmethod
    def parse(cls, spec: str) -> Audience:
        text = (spec or "").strip().lower()
        if text == "all":
            return cls("all")
        if text == "qualified":
            return cls("qualified")
        if text.startswith("active-days:"):
            raw = text.split(":", 1)[1]
            try:
                days = int(raw)
            except ValueError:
                raise AudienceError(f"active-days needs a whole number of days, got {raw!r} ({SPEC_HELP})") from None
            if not 1 <= days <= 3650:
                raise AudienceError(f"active-days must be between 1 and 3650, got {days}")
            return cls("active-days", days)
        raise AudienceError(f"unknown audience {spec!r}; use {SPEC_HELP}")

    def __str__(self) -> str:
        return f"active-days:{self.days}" if self.kind == "active-days" else self.kind


def recipients_query(project: Project | None, audience: Audience, now: datetime | None = None) -> Select:
    """``SELECT worker.id, worker.tg_id`` of the audience, ordered by worker id.

    "qualified": for a project with training, the workers whose stage is ``work``; without
    training, every active worker except those the project blocked or failed.
    """
    now = now or utcnow()
    query = select(col(Worker.id), col(Worker.tg_id)).where(col(Worker.status) == WorkerStatus.ACTIVE)
    if audience.kind == "active-days":
        query = query.where(col(Worker.last_active_at) >= now - timedelta(days=audience.days))
    elif audience.kind == "qualified":
        if project is None:
            raise AudienceError("'qualified' needs a project")
        standing = and_(col(WorkerProject.worker_id) == col(Worker.id), col(WorkerProject.project_id) == project.id)
        if project.training_required:
            query = query.where(exists().where(standing, col(WorkerProject.stage) == "work"))
        else:
            query = query.where(not_(exists().where(standing, col(WorkerProject.stage).in_(_EXCLUDED_STAGES))))
    return query.order_by(col(Worker.id))


def count(session: Session, project: Project | None, audience: Audience, now: datetime | None = None) -> int:
    sub = recipients_query(project, audience, now).order_by(None).subquery()
    return int(session.execute(select(func.count()).select_from(sub)).scalar_one())
