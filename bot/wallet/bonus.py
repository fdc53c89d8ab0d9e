"""Bonuses: extra money from the platform, for one worker or for everyone who meets a rule.

The idempotency key is ``bonus:<campaign>:<worker_id>``: the operator names the cause
("weekly-2026-48", "accuracy-p3-nov"), so running the same command twice, or re-running it
after a crash halfway through a long list, pays each worker at most once for that cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from bot.clock import utcnow
from bot.tasks.models import Project, Worker, WorkerProject
from bot.wallet import ledger
from bot.wallet.accounts import BONUS_EXPENSE, worker_account
from bot.wallet.ledger import Leg
from bot.wallet.models import EntryKind

MAX_BONUS = 10_000_000  # a typo guard: ₩10M to one worker in one go is never intended
_CAMPAIGN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class BonusError(ValueError):
    """Bad bonus input (amount, campaign name, unknown worker or project)."""


def smoothed_accuracy(correct: int, total: int) -> float:
    """(0.5 + correct) / (1 + total): a worker with 1 of 1 right is not "100 % accurate"."""
    return (0.5 + correct) / (1 + total)


def bonus_key(campaign: str, worker_id: int) -> str:
    return f"bonus:{campaign}:{worker_id}"


def check_campaign(campaign: str) -> str:
    campaign = (campaign or "").strip()
    if not _CAMPAIGN.match(campaign):
        raise BonusError("campaign must be 1-64 letters, digits, '.', '_' or '-' (it names the cause, e.g. weekly-2026-48)")
    return campaign


def check_amount(amount: int) -> int:
    if not isinstance(amount, int) or amount <= 0:
        raise BonusError("bonus amount must be a positive whole number of KRW")
    if amount > MAX_BONUS:
        raise BonusError(f"bonus amount above {MAX_BONUS:,} KRW is refused (typo?)")
    return amount


def grant(
    session: Session, worker_id: int, amount: int, *, campaign: str, memo: str | None = None, now: datetime | None = None
) -> bool:
    """Pay one bonus, available at once; False when this campaign already paid this worker."""
    campaign, amount = check_campaign(campaign), check_amount(amount)
    if session.get(Worker, worker_id) is None:
        raise BonusError(f"worker {worker_id} does not exist")
    now = now or utcnow()
    _, created = ledger.post(
        session,
        key=bonus_key(campaign, worker_id),
        kind=EntryKind.BONUS,
        worker_id=worker_id,
        legs=[Leg(BONUS_EXPENSE, -amount, now), Leg(worker_account(worker_id), amount, now)],
        memo=(memo or campaign)[:500],
        now=now,
    )
    return created


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
        select(WorkerProject.worker_id, Worker.name, WorkerProject.golden_correct, WorkerProject.golden_total)
        .join(Worker, Worker.id == WorkerProject.worker_id)  # type: ignore[arg-type]
        .where(WorkerProject.project_id == project_id, WorkerProject.golden_total >= min_golden, Worker.status != "banned")
        .order_by(WorkerProject.worker_id)
    ).all()
    found = [Candidate(int(w), name, int(c), int(t)) for w, name, c, t in rows]
    return [c for c in found if c.accuracy >= min_accuracy]
