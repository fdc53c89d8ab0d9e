"""The last few things that happened to a worker's money, grouped so a phone screen can say them
in plain words ("Answers ×12 +₩120 today") instead of listing every ₩10 entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.wallet.accounts import worker_account
from bot.wallet.models import EntryKind, LedgerEntry, LedgerTxn

GROUPED = (EntryKind.EARNING.value, EntryKind.REVERSAL.value)
SCAN = 300  # how many recent transactions are grouped into lines


@dataclass(slots=True)
class Activity:
    kind: str  # an EntryKind value
    amount: int  # change of the worker's balance (payout: the amount sent to the bank)
    count: int  # how many transactions this line stands for
    day: date  # local day of the newest one
    pending_until: datetime | None  # part of it is still on hold until then
    note: str | None  # bonus campaign, failure reason...


def recent(session: Session, worker_id: int, *, limit: int = 5, tz: str = "Asia/Seoul", now: datetime | None = None) -> list[Activity]:
    now = now or utcnow()
    account = worker_account(worker_id)
    mine = col(LedgerEntry.account) == account
    # Only the newest SCAN transactions are grouped: picked first through the worker_id index,
    # so the cost does not grow with the length of the worker's history.
    newest = select(col(LedgerTxn.id)).where(col(LedgerTxn.worker_id) == worker_id).order_by(col(LedgerTxn.id).desc()).limit(SCAN)
    rows = session.execute(
        select(
            col(LedgerTxn.kind),
            col(LedgerTxn.created_at),
            col(LedgerTxn.memo),
            func.coalesce(func.sum(case((mine, col(LedgerEntry.amount)), else_=0)), 0),
            func.coalesce(func.sum(case((col(LedgerEntry.amount) > 0, col(LedgerEntry.amount)), else_=0)), 0),
            func.max(case((mine, col(LedgerEntry.available_at)), else_=None)),
        )
        .select_from(LedgerTxn)
        .outerjoin(LedgerEntry, col(LedgerEntry.txn_id) == col(LedgerTxn.id))
        .where(col(LedgerTxn.id).in_(newest.scalar_subquery()))
        .group_by(col(LedgerTxn.id), col(LedgerTxn.kind), col(LedgerTxn.created_at), col(LedgerTxn.memo))
        .order_by(col(LedgerTxn.id).desc())
        .limit(SCAN)
    ).all()
    zone = ZoneInfo(tz)
    lines: list[Activity] = []
    for kind, created_at, memo, delta, gross, available_at in rows:
        day = created_at.astimezone(zone).date()
        amount = int(gross) if kind == EntryKind.PAYOUT else int(delta)
        if kind == EntryKind.REVERSAL and amount == 0:
            continue  # a reversal that found nothing to take back changed nothing the worker sees
        if available_at is not None and available_at.tzinfo is None:
            available_at = available_at.replace(tzinfo=ZoneInfo("UTC"))
        pending = available_at if available_at is not None and available_at > now and amount > 0 else None
        last = lines[-1] if lines else None
        if last is not None and kind in GROUPED and last.kind == kind and last.day == day:
            last.amount += amount
            last.count += 1
            if pending is not None and (last.pending_until is None or pending > last.pending_until):
                last.pending_until = pending
            continue
        if len(lines) == limit:
            break
        note = memo if kind in (EntryKind.BONUS.value, EntryKind.PAYOUT_FAILURE.value) else None
        lines.append(Activity(kind, amount, 1, day, pending, note))
    return lines
