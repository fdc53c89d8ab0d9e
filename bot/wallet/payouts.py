"""Operators close withdrawal requests: paid (money left by bank transfer) or failed (money back).

Each close is a conditional UPDATE (``WHERE status = 'open'``) plus its ledger transaction
(``payout:<id>:paid`` or ``payout:<id>:failed``) in ONE database transaction, so:

* marking a request twice changes nothing the second time (the UPDATE matches no row and the
  key already exists), and a paid request can never be failed or paid again;
* a crash leaves either the request open with its money in ``payouts:open`` (run it again) or
  the request closed with the matching ledger transaction, never one without the other.

A batch of ids is checked first and applied in one transaction: an unknown id or an id in the
wrong state aborts the whole batch with a clear message and changes nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlmodel import Session, col

from bot.clock import utcnow
from bot.db import rowcount
from bot.plain_text import csv_cell
from bot.wallet import ledger
from bot.wallet.accounts import PAID_OUT, PAYOUTS_OPEN, worker_account
from bot.wallet.ledger import Leg
from bot.wallet.models import EntryKind, LedgerEntry, LedgerTxn, Withdrawal, WithdrawalStatus
from bot.wallet.payout_accounts import mask
from bot.workers.models import Worker, WorkerStatus

MAX_REASON = 512
NOTIFY_CLAIM = timedelta(seconds=60)
EXPORT_COLUMNS = ("id", "worker_id", "name", "bank", "account_number", "holder", "amount", "requested_at")


class PayoutError(ValueError):
    """A batch that cannot be applied as asked (unknown id, wrong state, bad reason)."""


def paid_key(withdrawal_id: int) -> str:
    return f"payout:{withdrawal_id}:paid"


def failed_key(withdrawal_id: int) -> str:
    return f"payout:{withdrawal_id}:failed"


@dataclass(slots=True)
class BatchResult:
    changed: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)  # already in the asked state: idempotent
    amount: int = 0  # KRW moved by this run


def list_requests(session: Session, status: str | None = WithdrawalStatus.OPEN) -> list[tuple[Withdrawal, str]]:
    """Requests with the worker's display name, oldest first."""
    query = select(Withdrawal, col(Worker.name)).join(Worker, col(Worker.id) == col(Withdrawal.worker_id)).order_by(col(Withdrawal.id))
    if status:
        query = query.where(col(Withdrawal.status) == status)
    return [(w, name) for w, name in session.execute(query).all()]


def count_open(session: Session) -> tuple[int, int]:
    row = session.execute(
        select(func.count(col(Withdrawal.id)), func.coalesce(func.sum(col(Withdrawal.amount)), 0)).where(
            col(Withdrawal.status) == WithdrawalStatus.OPEN
        )
    ).one()
    return int(row[0]), int(row[1])


def export_rows(session: Session, batch: int = 500) -> Iterator[dict[str, object]]:
    """Open requests for the bank transfer file, streamed by id (read-only)."""
    last = 0
    while True:
        rows = session.execute(
            select(Withdrawal, col(Worker.name))
            .join(Worker, col(Worker.id) == col(Withdrawal.worker_id))
            .where(col(Withdrawal.status) == WithdrawalStatus.OPEN, col(Withdrawal.id) > last)
            .order_by(col(Withdrawal.id))
            .limit(batch)
        ).all()
        if not rows:
            return
        for w, name in rows:
            last = w.id
            yield {
                "id": w.id,
                "worker_id": w.worker_id,
                "name": name,
                "bank": w.bank,
                "account_number": w.account_number,
                "holder": w.holder,
                "amount": w.amount,
                "requested_at": w.created_at.isoformat(timespec="seconds"),
            }


def write_csv(rows: Iterable[Mapping[str, Any]], out: Path, on_row: Callable[[], None] | None = None) -> tuple[int, int]:
    """Write to a temporary file and rename, so a crash never leaves half a transfer file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    count = total = 0
    with tmp.open("w", newline="", encoding="utf-8-sig") as fh:  # BOM: Excel opens Korean text right
        writer = csv.DictWriter(fh, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: csv_cell(value) for key, value in row.items()})
            count += 1
            total += int(row["amount"])
            if on_row is not None:
                on_row()
    tmp.replace(out)
    return count, total


def _load(session: Session, ids: Sequence[int]) -> dict[int, Withdrawal]:
    unique = sorted(set(ids))
    if not unique:
        raise PayoutError("no withdrawal ids given")
    found = {w.id: w for w in session.execute(select(Withdrawal).where(col(Withdrawal.id).in_(unique)).with_for_update()).scalars()}
    missing = [i for i in unique if i not in found]
    if missing:
        raise PayoutError(f"unknown withdrawal id(s): {', '.join(map(str, missing))}")
    return found


def _close(session: Session, withdrawal_id: int, status: WithdrawalStatus, now: datetime, reason: str | None) -> bool:
    result = session.execute(
        update(Withdrawal)
        .where(col(Withdrawal.id) == withdrawal_id, col(Withdrawal.status) == WithdrawalStatus.OPEN)
        .values(status=status, closed_at=now, reason=reason, notified=False, notify_claimed_until=None)
    )
    return rowcount(result) == 1


def _settle(
    session: Session,
    ids: Sequence[int],
    *,
    to: WithdrawalStatus,
    refuse_if: WithdrawalStatus,
    refusal: str,
    reason: str | None,
    now: datetime,
    posting: Callable[[int, Withdrawal], tuple[str, EntryKind, list[Leg], str]],
) -> BatchResult:
    """Close open requests as ``to`` and post their ledger transaction, in one transaction.

    All-or-nothing: a request already closed the other way refuses the whole batch; one already
    closed this way is left unchanged (re-running a batch is safe).
    """
    found = _load(session, ids)
    wrong = [i for i, w in found.items() if w.status == refuse_if]
    if wrong:
        raise PayoutError(f"{refusal}: {', '.join(map(str, wrong))}")
    result = BatchResult()
    for wid, w in sorted(found.items()):
        if not _close(session, wid, to, now, reason):
            result.unchanged.append(wid)
            continue
        key, kind, legs, memo = posting(wid, w)
        ledger.post(session, key=key, kind=kind, worker_id=w.worker_id, legs=legs, memo=memo, now=now)
        result.changed.append(wid)
        result.amount += w.amount
    return result


def mark_paid(session: Session, ids: Sequence[int], *, now: datetime | None = None) -> BatchResult:
    """The bank transfer went out: ``payouts:open`` -> ``payouts:paid`` for each request."""
    now = now or utcnow()

    def posting(wid: int, w: Withdrawal) -> tuple[str, EntryKind, list[Leg], str]:
        legs = [Leg(PAYOUTS_OPEN, -w.amount, now), Leg(PAID_OUT, w.amount, now)]
        return paid_key(wid), EntryKind.PAYOUT, legs, f"to {w.bank} {mask(w.account_number)}"

    return _settle(
        session,
        ids,
        to=WithdrawalStatus.PAID,
        refuse_if=WithdrawalStatus.FAILED,
        refusal="already failed, cannot be paid",
        reason=None,
        now=now,
        posting=posting,
    )


def fail(session: Session, ids: Sequence[int], *, reason: str, now: datetime | None = None) -> BatchResult:
    """The transfer bounced (wrong account...): the money returns to the worker, available now."""
    now = now or utcnow()
    reason = " ".join((reason or "").split())
    if not reason:
        raise PayoutError("a reason is required (the worker is told why)")
    if len(reason) > MAX_REASON:
        raise PayoutError(f"reason is longer than {MAX_REASON} characters")

    def posting(wid: int, w: Withdrawal) -> tuple[str, EntryKind, list[Leg], str]:
        legs = [Leg(PAYOUTS_OPEN, -w.amount, now), Leg(worker_account(w.worker_id), w.amount, now)]
        return failed_key(wid), EntryKind.PAYOUT_FAILURE, legs, reason

    return _settle(
        session,
        ids,
        to=WithdrawalStatus.FAILED,
        refuse_if=WithdrawalStatus.PAID,
        refusal="already paid, cannot fail",
        reason=reason,
        now=now,
        posting=posting,
    )


# --- telling the worker -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    withdrawal_id: int
    worker_id: int
    chat_id: int
    lang: str
    status: str
    amount: int
    bank: str
    masked: str
    reason: str | None


def claim_notices(session: Session, *, limit: int = 20, now: datetime | None = None) -> list[Notice]:
    """Closed requests whose worker was not told yet, claimed for ``NOTIFY_CLAIM``.

    A claim stops a second bot replica from sending the same message; if the sender dies
    before :func:`mark_notified`, the claim runs out and the message is sent again. Workers who
    blocked the bot are skipped until they write again (registration makes them active).
    """
    now = now or utcnow()
    rows = session.execute(
        select(Withdrawal, col(Worker.tg_id), col(Worker.lang))
        .join(Worker, col(Worker.id) == col(Withdrawal.worker_id))
        .where(
            col(Withdrawal.status).in_((WithdrawalStatus.PAID, WithdrawalStatus.FAILED)),
            col(Withdrawal.notified).is_(False),
            or_(col(Withdrawal.notify_claimed_until).is_(None), col(Withdrawal.notify_claimed_until) < now),
            col(Worker.status) != WorkerStatus.UNREACHABLE,  # told when they write to the bot again
        )
        .order_by(col(Withdrawal.id))
        .limit(limit)
    ).all()
    notices = []
    for w, tg_id, lang in rows:
        claimed = rowcount(
            session.execute(
                update(Withdrawal)
                .where(
                    col(Withdrawal.id) == w.id,
                    col(Withdrawal.notified).is_(False),
                    or_(col(Withdrawal.notify_claimed_until).is_(None), col(Withdrawal.notify_claimed_until) < now),
                )
                .values(notify_claimed_until=now + NOTIFY_CLAIM)
            )
        )
        if claimed != 1:
            continue
        notices.append(
            Notice(
                withdrawal_id=w.id,
                worker_id=w.worker_id,
                chat_id=w.chat_id or tg_id,
                lang=lang,
                status=w.status,
                amount=w.amount,
                bank=w.bank,
                masked=mask(w.account_number),
                reason=w.reason,
            )
        )
    return notices


def mark_notified(session: Session, withdrawal_id: int) -> None:
    session.execute(update(Withdrawal).where(col(Withdrawal.id) == withdrawal_id).values(notified=True, notify_claimed_until=None))


def release_notice(session: Session, withdrawal_id: int) -> None:
    """Sending failed for a passing reason: let the next round try again at once."""
    session.execute(
        update(Withdrawal).where(col(Withdrawal.id) == withdrawal_id, col(Withdrawal.notified).is_(False)).values(notify_claimed_until=None)
    )


# --- checks -------------------------------------------------------------------------------


def consistency_problems(session: Session) -> list[str]:
    """Every request's status must match its ledger transactions; returns what does not.

    Used by the tests after random and concurrent runs, and by ``payouts check``.
    """
    problems: list[str] = []
    keys = dict(
        session.execute(
            select(col(LedgerTxn.key), col(LedgerTxn.worker_id)).where(
                or_(col(LedgerTxn.key).like("withdrawal:%"), col(LedgerTxn.key).like("payout:%"))
            )
        ).all()
    )
    open_total = paid_total = 0
    for w in session.execute(select(Withdrawal)).scalars():
        has_req = f"withdrawal:{w.id}" in keys
        has_paid = paid_key(w.id) in keys
        has_failed = failed_key(w.id) in keys
        expected = {
            WithdrawalStatus.OPEN: (True, False, False),
            WithdrawalStatus.PAID: (True, True, False),
            WithdrawalStatus.FAILED: (True, False, True),
        }.get(WithdrawalStatus(w.status))
        if (has_req, has_paid, has_failed) != expected:
            problems.append(f"withdrawal {w.id} is {w.status} but ledger has request={has_req} paid={has_paid} failed={has_failed}")
        if w.status == WithdrawalStatus.OPEN:
            open_total += w.amount
        elif w.status == WithdrawalStatus.PAID:
            paid_total += w.amount
    if ledger.account_balance(session, PAYOUTS_OPEN) != open_total:
        problems.append(f"payouts:open holds {ledger.account_balance(session, PAYOUTS_OPEN)}, open requests sum to {open_total}")
    if ledger.account_balance(session, PAID_OUT) != paid_total:
        problems.append(f"payouts:paid holds {ledger.account_balance(session, PAID_OUT)}, paid requests sum to {paid_total}")
    if ledger.ledger_total(session) != 0:
        problems.append(f"ledger sums to {ledger.ledger_total(session)}, not 0")
    negative = session.execute(
        select(col(LedgerEntry.account), func.sum(col(LedgerEntry.amount)))
        .where(col(LedgerEntry.account).like("worker:%"))
        .group_by(col(LedgerEntry.account))
        .having(func.sum(col(LedgerEntry.amount)) < 0)
    ).all()
    problems.extend(f"{account} is negative ({total})" for account, total in negative)
    return problems
