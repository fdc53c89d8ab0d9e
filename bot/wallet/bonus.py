"""Bonuses: extra money from the platform for a worker (who qualifies by a rule is decided in
``bot.work.bonuses``, which reads quality figures).

The idempotency key is ``bonus:<campaign>:<worker_id>``: the operator names the cause
("weekly-2026-48", "accuracy-p3-nov"), so running the same command twice, or re-running it
after a crash halfway through a long list, pays each worker at most once for that cause.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import Session

from bot.clock import utcnow
from bot.wallet import ledger
from bot.wallet.accounts import BONUS_EXPENSE, worker_account
from bot.wallet.ledger import Leg
from bot.wallet.models import EntryKind
from bot.workers.models import Worker

MAX_BONUS = 10_000_000  # a typo guard: ₩10M to one worker in one go is never intended
_CAMPAIGN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class BonusError(ValueError):
    """Bad bonus input (amount, campaign name, unknown worker or project)."""


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


def grant(session: Session, worker_id: int, amount: int, *, campaign: str, memo: str | None = None, now: datetime | None = None) -> bool:
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
