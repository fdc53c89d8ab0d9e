"""Who earns a bonus by a quality rule: workers of a project with a high golden accuracy.

Reads quality figures (``bot.tasks``) to pay money (``bot.wallet.bonus.grant``), so it lives
here, where both domains meet.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session, col

from bot.tasks.models import Project, WorkerProject
from bot.tasks.quality_math import smoothed_accuracy
from bot.wallet.bonus import BonusError
from bot.workers.models import Worker, WorkerStatus

__all__ = ["Candidate", "by_accuracy", "smoothed_accuracy"]


@dataclass(frozen=True, slots=True)
class Candidate:
    worker_id: int
    name: str
    golden_correct: int
    golden_total: int

    @property
    def accuracy(self) -> float:
        return smoothed_accuracy(self.golden_correct, self.golden_total)


def by_accuracy(session: Session, project_id: int, *, min_accuracy: float, min_golden: int = 0) -> list[Candidate]:
    """Workers of a project whose smoothed golden accuracy is at least ``min_accuracy``.

    Banned workers are left out: a bonus for work that was blocked as cheating is not intended.
    """
    if not 0.0 <= min_accuracy <= 1.0:
        raise BonusError("min accuracy must be between 0 and 1")
    if min_golden < 0:
        raise BonusError("min golden must not be negative")
    if session.get(Project, project_id) is None:
        raise BonusError(f"project {project_id} does not exist")
    rows = session.execute(
        select(col(WorkerProject.worker_id), col(Worker.name), col(WorkerProject.golden_correct), col(WorkerProject.golden_total))
        .join(Worker, col(Worker.id) == col(WorkerProject.worker_id))
        .where(
            col(WorkerProject.project_id) == project_id,
            col(WorkerProject.golden_total) >= min_golden,
            col(Worker.status) != WorkerStatus.BANNED.value,
        )
        .order_by(col(WorkerProject.worker_id))
    ).all()
    found = [Candidate(int(w), name, int(c), int(t)) for w, name, c, t in rows]
    return [c for c in found if c.accuracy >= min_accuracy]
