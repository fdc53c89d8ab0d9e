"""Posting to and reading from the append-only ledger.

Every posting is one ``LedgerTxn`` with a unique idempotency key and entries that sum to zero.
Posting the same key again returns the first transaction and writes nothing: that is what makes
"pay for answer 42" safe to retry after a crash or a re-delivered update.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlmodel import Session

from bot.clock import day_start, utcnow
from bot.wallet.accounts import LABELING_EXPENSE, worker_account
from bot.wallet.models import EntryKind, LedgerEntry, LedgerTxn


class LedgerError(ValueError):
    """A posting that would break the ledger's rules (unbalanced, empty, zero amount)."""


@dataclass(frozen=True, slots=True)
class Leg:
    account: str
    amount: int
    available_at: datetime | None = None


def find_txn(session: Session, key: str) -> LedgerTxn | None:
    return session.execute(select(LedgerTxn).where(LedgerTxn.key == key)).scalars().first()


def post(
    session: Session,
    *,
    key: str,
    kind: EntryKind | str,
    legs: list[Leg],
    worker_id: int | None = None,
    memo: str | None = None,
    now: datetime | None = None,
) -> tuple[LedgerTxn, bool]:
    """Write one balanced transaction; returns ``(txn, created)``; ``created`` is False on replay."""
    existing = find_txn(session, key)
    if existing is not None:
        return existing, False
    if not legs or sum(leg.amount for leg in legs) != 0:
        raise LedgerError(f"transaction {key!r} does not balance")
    if any(leg.amount == 0 for leg in legs):
        raise LedgerError(f"transaction {key!r} has a zero leg")
    now = now or utcnow()
    txn = LedgerTxn(key=key, kind=str(kind), worker_id=worker_id, memo=memo, created_at=now)
    session.add(txn)
    session.flush()
    session.add_all(
        LedgerEntry(
            txn_id=txn.id,  # type: ignore[arg-type]
            account=leg.account,
            amount=leg.amount,
            available_at=leg.available_at or now,
            created_at=now,
        )
        for leg in legs
    )
    session.flush()
    return txn, True


def credit_earning(
    session: Session, *, worker_id: int, answer_id: int, amount: int, hold_days: int = 0,
    now: datetime | None = None,
) -> bool:
    """Pay an accepted answer once; returns False when it was already paid (or costs nothing)."""
    if amount <= 0:
        return False
    now = now or utcnow()
    available_at = now + timedelta(days=hold_days)
    _, created = post(
        session,
        key=f"answer:{answer_id}",
        kind=EntryKind.EARNING,
        worker_id=worker_id,
        legs=[
            Leg(LABELING_EXPENSE, -amount, now),
            Leg(worker_account(worker_id), amount, available_at),
        ],
        now=now,
    )
    return created


@dataclass(frozen=True, slots=True)
class Balance:
    available: int  # can be withdrawn now
    pending: int  # earned, still in the hold period
    today: int  # earned (earnings + bonuses) since local midnight
    lifetime: int  # earned in all, after reversals

    @property
    def total(self) -> int:
        return self.available + self.pending


def account_balance(session: Session, account: str) -> int:
    total = session.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.account == account)
    ).scalar_one()
    return int(total)


def balance(session: Session, worker_id: int, *, now: datetime | None = None, tz: str = "Asia/Seoul") -> Balance:
    now = now or utcnow()
    account = worker_account(worker_id)
    earned_kinds = (EntryKind.EARNING.value, EntryKind.BONUS.value, EntryKind.REVERSAL.value)
    today_start = day_start(now, tz)
    row = session.execute(
        select(
            func.coalesce(func.sum(case((LedgerEntry.available_at <= now, LedgerEntry.amount), else_=0)), 0),
            func.coalesce(func.sum(case((LedgerEntry.available_at > now, LedgerEntry.amount), else_=0)), 0),
            func.coalesce(
                func.sum(
                    case(
                        (
                            (LedgerTxn.kind.in_(earned_kinds)) & (LedgerEntry.created_at >= today_start),  # type: ignore[attr-defined]
                            LedgerEntry.amount,
                        ),
                        else_=0,
                    )
                ),
                0,
            ),
            func.coalesce(func.sum(case((LedgerTxn.kind.in_(earned_kinds), LedgerEntry.amount), else_=0)), 0),  # type: ignore[attr-defined]
        )
        .select_from(LedgerEntry)
        .join(LedgerTxn, LedgerTxn.id == LedgerEntry.txn_id)  # type: ignore[arg-type]
        .where(LedgerEntry.account == account)
    ).one()
    return Balance(available=int(row[0]), pending=int(row[1]), today=int(row[2]), lifetime=int(row[3]))


def ledger_total(session: Session) -> int:
    """Sum over all accounts: zero whenever the books are consistent."""
    return int(session.execute(select(func.coalesce(func.sum(LedgerEntry.amount), 0))).scalar_one())
