"""Worker registration and profile changes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.i18n import normalize_locale
from bot.workers.models import Worker, WorkerStatus


def get_by_tg(session: Session, tg_id: int) -> Worker | None:
    return session.execute(select(Worker).where(col(Worker.tg_id) == tg_id)).scalars().first()


def register(
    session: Session,
    *,
    tg_id: int,
    name: str,
    username: str | None = None,
    language_code: str | None = None,
    default_locale: str = "ko",
    now: datetime | None = None,
) -> tuple[Worker, bool]:
    """Create the worker on first contact; later calls refresh the name. Returns (worker, created).

    A worker who had blocked the bot and writes again is reachable again, so ``unreachable``
    turns back to ``active``; a ban by an operator or a rule stays.
    """
    now = now or utcnow()
    worker = get_by_tg(session, tg_id)
    if worker is None:
        worker = Worker(
            tg_id=tg_id,
            name=name[:256],
            username=username,
            lang=normalize_locale(language_code, default_locale),
            created_at=now,
            last_active_at=now,
        )
        session.add(worker)
        session.flush()
        return worker, True
    worker.name = name[:256]
    worker.username = username
    worker.last_active_at = now
    if worker.status == WorkerStatus.UNREACHABLE:
        worker.status = WorkerStatus.ACTIVE
        worker.status_reason = None
    session.add(worker)
    session.flush()
    return worker, False


def set_language(session: Session, worker_id: int, lang: str) -> None:
    session.execute(update(Worker).where(col(Worker.id) == worker_id).values(lang=normalize_locale(lang)))


def mark_unreachable(session: Session, worker_id: int, reason: str = "blocked the bot") -> None:
    """The worker blocked the bot (403): stop messaging them until they write again."""
    session.execute(
        update(Worker)
        .where(col(Worker.id) == worker_id, col(Worker.status) == WorkerStatus.ACTIVE)
        .values(status=WorkerStatus.UNREACHABLE, status_reason=reason)
    )


def ban(session: Session, worker_id: int, reason: str) -> None:
    session.execute(update(Worker).where(col(Worker.id) == worker_id).values(status=WorkerStatus.BANNED, status_reason=reason))
