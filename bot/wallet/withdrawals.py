"""A worker asks for their available money: one open request at a time, above a minimum.

The request row and its ledger transaction (``withdrawal:<id>``: worker -> ``payouts:open``) are
written in the same database transaction, after the worker row is locked, so "is there enough
available money and no open request?" and "take it" happen atomically: a crash or a
concurrent request can never leave a request without its money or money without a request.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.plain_text import ascii_digits
from bot.wallet import ledger, payout_accounts
from bot.wallet.accounts import PAYOUTS_OPEN, worker_account
from bot.wallet.ledger import Leg
from bot.wallet.models import EntryKind, Withdrawal, WithdrawalStatus


class WithdrawRefusal(StrEnum):
    NO_ACCOUNT = "no_account"  # enter the bank account first
    ALREADY_OPEN = "already_open"  # one open request at a time
    BELOW_MINIMUM = "below_minimum"
    INSUFFICIENT = "insufficient"  # more than the available balance
    INVALID = "invalid"  # not a positive whole number


@dataclass(frozen=True, slots=True)
class Quote:
    """What the /withdraw screen needs to decide what to offer."""

    available: int
    minimum: int
    open_request: Withdrawal | None
    account: payout_accounts.AccountView | None

    @property
    def can_withdraw(self) -> bool:
        return self.open_request is None and self.available >= self.minimum


def withdrawal_key(withdrawal_id: int) -> str:
    return f"withdrawal:{withdrawal_id}"


def open_request(session: Session, worker_id: int) -> Withdrawal | None:
    return (
        session.execute(select(Withdrawal).where(col(Withdrawal.worker_id) == worker_id, col(Withdrawal.status) == WithdrawalStatus.OPEN))
        .scalars()
        .first()
    )


def quote(session: Session, worker_id: int, *, minimum: int, now: datetime | None = None) -> Quote:
    now = now or utcnow()
    return Quote(
        available=ledger.spendable(session, worker_id, now),
        minimum=minimum,
        open_request=open_request(session, worker_id),
        account=payout_accounts.view(session, worker_id),
    )


def parse_amount(text: str) -> int | None:
    """ "12,000", "12000원", "₩12 000", fullwidth "１２０００" -> 12000; anything else -> None.

    Only ASCII digits after NFKC normalisation count: ``str.isdigit`` also accepts "²³",
    on which ``int()`` raises.
    """
    normalized = unicodedata.normalize("NFKC", text or "")
    cleaned = normalized.strip().replace(",", "").replace(" ", "").replace("₩", "").removesuffix("원").removesuffix("KRW")
    digits = ascii_digits(cleaned)
    if digits is None or len(digits) > 12:
        return None
    return int(digits)


def request(
    session: Session,
    worker_id: int,
    amount: int,
    *,
    minimum: int,
    chat_id: int | None = None,
    now: datetime | None = None,
) -> Withdrawal | WithdrawRefusal:
    """Open a withdrawal of ``amount`` KRW; the money leaves "available" in the same transaction."""
    if not isinstance(amount, int) or amount <= 0:
        return WithdrawRefusal.INVALID
    ledger.lock_worker(session, worker_id)
    now = now or utcnow()  # after the lock: see ledger.reverse_answer
    account = payout_accounts.get(session, worker_id)
    if account is None:
        return WithdrawRefusal.NO_ACCOUNT
    if open_request(session, worker_id) is not None:
        return WithdrawRefusal.ALREADY_OPEN
    if amount < minimum:
        return WithdrawRefusal.BELOW_MINIMUM
    if amount > ledger.spendable(session, worker_id, now):
        return WithdrawRefusal.INSUFFICIENT
    withdrawal = Withdrawal(
        worker_id=worker_id,
        amount=amount,
        status=WithdrawalStatus.OPEN,
        bank=account.bank,
        account_number=account.account_number,
        holder=account.holder,
        chat_id=chat_id,
        created_at=now,
    )
    try:
        with session.begin_nested():  # the partial unique index is the last line of defence
            session.add(withdrawal)
            session.flush()
    except IntegrityError:
        return WithdrawRefusal.ALREADY_OPEN
    assert withdrawal.id is not None
    ledger.post(
        session,
        key=withdrawal_key(withdrawal.id),
        kind=EntryKind.WITHDRAWAL,
        worker_id=worker_id,
        legs=[Leg(worker_account(worker_id), -amount, now), Leg(PAYOUTS_OPEN, amount, now)],
        memo=f"to {account.bank} {payout_accounts.mask(account.account_number)}",
        now=now,
    )
    return withdrawal


def last_requests(session: Session, worker_id: int, limit: int = 3) -> list[Withdrawal]:
    return list(
        session.execute(
            select(Withdrawal).where(col(Withdrawal.worker_id) == worker_id).order_by(col(Withdrawal.id).desc()).limit(limit)
        ).scalars()
    )
