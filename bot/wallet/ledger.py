"""Posting to and reading from the append-only ledger.

Every posting is one ``LedgerTxn`` with a unique idempotency key and entries that sum to zero.
Posting the same key again returns the first transaction and writes nothing: that is what makes
"pay for answer 42" safe to retry after a crash or a re-delivered update.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, bindparam, case, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.selectable import CTE
from sqlmodel import Session, col

from bot.clock import day_start, utcnow
from bot.db.hot import Carried, execute, hot
from bot.db.tables import table
from bot.wallet.accounts import LABELING_EXPENSE, worker_account
from bot.wallet.models import EntryKind, LedgerEntry, LedgerTxn
from bot.workers.models import Worker

log = structlog.get_logger("crowdpin.wallet")


class LedgerError(ValueError):
    """A posting that would break the ledger's rules (unbalanced, empty, zero amount)."""


@dataclass(frozen=True, slots=True)
class Leg:
    account: str
    amount: int
    available_at: datetime | None = None


def find_txn(session: Session, key: str) -> LedgerTxn | None:
    return session.execute(select(LedgerTxn).where(col(LedgerTxn.key) == key)).scalars().first()


# Prebuilt statements: every paid answer posts one transaction, and building SQL expressions
# costs more CPU than running them. The key is claimed by ``INSERT ... ON CONFLICT (key) DO
# NOTHING RETURNING id`` (same syntax on SQLite and PostgreSQL): one statement both checks and
# takes it, and a concurrent poster of the same key waits for the first and then sees a replay
# instead of failing on the unique index.
_INSERT_TXN_ONCE = {
    "sqlite": hot(sqlite_insert(LedgerTxn).on_conflict_do_nothing(index_elements=["key"]).returning(col(LedgerTxn.id))),
    "postgresql": hot(pg_insert(LedgerTxn).on_conflict_do_nothing(index_elements=["key"]).returning(col(LedgerTxn.id))),
}
_INSERT_TXN = insert(LedgerTxn).returning(col(LedgerTxn.id))
_INSERT_ENTRY = hot(insert(LedgerEntry))


def _post_two_legs() -> tuple[Select[tuple[int]], tuple[CTE, CTE]]:
    """PostgreSQL: the key claim and both legs of a two-leg posting (every paid answer) in one
    statement, one round trip instead of two plus a pipelined ``executemany``. A data-modifying
    CTE always runs to completion; when the key was posted before, ``txn`` returns no row, so
    ``legs`` inserts nothing and the statement returns nothing: the replay path, as before.
    (SQLite has no INSERT inside WITH: it keeps the two statements.) Parameters are named
    ``p_*``: the posting can ride inside another table's UPDATE, whose column names SQLAlchemy
    reserves."""
    entry = table(LedgerEntry).c
    txn = (
        pg_insert(LedgerTxn)
        .values(
            key=bindparam("p_key"),
            kind=bindparam("p_kind"),
            worker_id=bindparam("p_worker_id"),
            memo=bindparam("p_memo"),
            created_at=bindparam("p_created_at"),
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(col(LedgerTxn.id))
        .cte("txn")
    )

    def leg(i: int) -> Any:
        return select(
            txn.c.id,
            bindparam(f"p_account{i}", type_=entry.account.type),
            bindparam(f"p_amount{i}", type_=entry.amount.type),
            bindparam(f"p_available_at{i}", type_=entry.available_at.type),
            bindparam("p_created_at", type_=entry.created_at.type),
        )

    legs = (
        insert(LedgerEntry).from_select(["txn_id", "account", "amount", "available_at", "created_at"], leg(0).union_all(leg(1))).cte("legs")
    )
    return hot(select(txn.c.id).add_cte(legs)), (txn, legs)


_PG_TWO_LEGS, _PG_TWO_LEGS_CTES = _post_two_legs()
_POST_TWO_LEGS = {"postgresql": _PG_TWO_LEGS}
_TWO_LEGS_CTES = {"postgresql": _PG_TWO_LEGS_CTES}  # the same posting, to ride on a later statement


def _insert_txn(session: Session, values: dict[str, object]) -> int | None:
    """The new transaction's id, or None when the key was posted before."""
    statement = _INSERT_TXN_ONCE.get(session.get_bind().dialect.name)
    if statement is None:  # another engine: check, then insert
        if find_txn(session, str(values["key"])) is not None:
            return None
        statement = _INSERT_TXN
    return execute(session, statement, values).scalar()


def post(
    session: Session,
    *,
    key: str,
    kind: EntryKind | str,
    legs: list[Leg],
    worker_id: int | None = None,
    memo: str | None = None,
    now: datetime | None = None,
    allow_empty: bool = False,
) -> tuple[LedgerTxn, bool]:
    """Write one balanced transaction; returns ``(txn, created)``; ``created`` is False on replay.

    ``allow_empty`` records a transaction without entries: a decision that moved no money
    (a reversal with nothing left to take back) must still hold its key, so that it is final.
    """
    now = now or utcnow()
    txn_id, existing = _write(session, key=key, kind=kind, legs=legs, now=now, worker_id=worker_id, memo=memo, allow_empty=allow_empty)
    if existing is not None:
        return existing, False
    return LedgerTxn(id=txn_id, key=key, kind=str(kind), worker_id=worker_id, memo=memo, created_at=now), True


def _two_leg_values(
    key: str, kind: EntryKind | str, worker_id: int | None, memo: str | None, legs: list[Leg], now: datetime
) -> dict[str, object]:
    values: dict[str, object] = {"p_key": key, "p_kind": str(kind), "p_worker_id": worker_id, "p_memo": memo, "p_created_at": now}
    for i, leg in enumerate(legs):
        values[f"p_account{i}"] = leg.account
        values[f"p_amount{i}"] = leg.amount
        values[f"p_available_at{i}"] = leg.available_at or now
    return values


def _write(
    session: Session,
    *,
    key: str,
    kind: EntryKind | str,
    legs: list[Leg],
    now: datetime,
    worker_id: int | None = None,
    memo: str | None = None,
    allow_empty: bool = False,
) -> tuple[int, LedgerTxn | None]:
    """(id, None) for a new posting; (id, the first posting) for a replay of its key."""
    problem = None
    if (not legs and not allow_empty) or sum(leg.amount for leg in legs) != 0:
        problem = f"transaction {key!r} does not balance"
    elif any(leg.amount == 0 for leg in legs):
        problem = f"transaction {key!r} has a zero leg"
    if problem is not None:
        existing = find_txn(session, key)
        if existing is not None and existing.id is not None:  # a replay answers with the first posting, as always
            return existing.id, existing
        raise LedgerError(problem)
    one_statement = _POST_TWO_LEGS.get(session.get_bind().dialect.name) if len(legs) == 2 else None
    if one_statement is not None:  # the key and both legs at once
        txn_id = execute(session, one_statement, _two_leg_values(key, kind, worker_id, memo, legs, now)).scalar()
    else:
        txn_id = _insert_txn(session, {"key": key, "kind": str(kind), "worker_id": worker_id, "memo": memo, "created_at": now})
    if txn_id is None:
        existing = find_txn(session, key)
        assert existing is not None and existing.id is not None
        return existing.id, existing
    if legs and one_statement is None:
        execute(
            session,
            _INSERT_ENTRY,
            [
                {"txn_id": txn_id, "account": leg.account, "amount": leg.amount, "available_at": leg.available_at or now, "created_at": now}
                for leg in legs
            ],
        )
    return txn_id, None


def credit_earning(
    session: Session,
    *,
    worker_id: int,
    answer_id: int,
    amount: int,
    hold_days: int = 0,
    now: datetime | None = None,
    carry: list[Carried] | None = None,
) -> bool:
    """Pay an accepted answer once; returns False when it was already paid (or costs nothing).
    Posts without building the ORM object :func:`post` returns: this runs on every answer.

    ``carry`` (PostgreSQL): the posting is appended there, to ride on a later statement of the
    transaction (:func:`bot.db.hot.execute`); the key still makes it once, but whether it was
    new is not known then, so it returns True. For an answer recorded in the same transaction,
    whose key cannot have been posted before."""
    if amount <= 0:
        return False
    now = now or utcnow()
    available_at = now + timedelta(days=hold_days)
    key = f"answer:{answer_id}"
    legs = [Leg(LABELING_EXPENSE, -amount, now), Leg(worker_account(worker_id), amount, available_at)]
    ctes = _TWO_LEGS_CTES.get(session.get_bind().dialect.name) if carry is not None else None
    if carry is not None and ctes is not None:
        carry.append(
            Carried(
                ctes, _POST_TWO_LEGS[session.get_bind().dialect.name], _two_leg_values(key, EntryKind.EARNING, worker_id, None, legs, now)
            )
        )
        return True
    _, existing = _write(session, key=key, kind=EntryKind.EARNING, worker_id=worker_id, legs=legs, now=now)
    return existing is None


def lock_worker(session: Session, worker_id: int) -> None:
    """Serialise every operation that takes money out of one worker's account.

    PostgreSQL: ``SELECT ... FOR NO KEY UPDATE`` on the worker row, held until commit, so "check
    the available balance, then post the debit" is atomic against other debits of the same
    worker. It is the FOR UPDATE variant that does not conflict with the KEY SHARE locks that
    foreign-key checks take, so answers and credits (which only add money and insert rows
    referencing the worker) never wait for it, and cannot deadlock with it.
    SQLite: the clause renders to nothing, but write transactions start with ``BEGIN
    IMMEDIATE`` (see ``bot.db.engine``), which already serialises all writers.
    """
    found = session.execute(select(col(Worker.id)).where(col(Worker.id) == worker_id).with_for_update(key_share=True)).scalar()
    if found is None:
        raise LedgerError(f"worker {worker_id} does not exist")


def available_balance(session: Session, worker_id: int, now: datetime) -> int:
    total = session.execute(
        select(func.coalesce(func.sum(col(LedgerEntry.amount)), 0)).where(
            col(LedgerEntry.account) == worker_account(worker_id), col(LedgerEntry.available_at) <= now
        )
    ).scalar_one()
    return int(total)


def spendable(session: Session, worker_id: int, at: datetime) -> int:
    """What can be taken out at ``at`` without the available balance dipping below zero later.

    Normally the available balance at ``at``; it is less only when entries dated after ``at``
    sum to something negative at some instant (a debit stamped by a clock running ahead), so a
    debit checked against this can never make any future balance negative.
    """
    low = running = available_balance(session, worker_id, at)
    later = session.execute(
        select(col(LedgerEntry.available_at), func.sum(col(LedgerEntry.amount)))
        .where(col(LedgerEntry.account) == worker_account(worker_id), col(LedgerEntry.available_at) > at)
        .group_by(col(LedgerEntry.available_at))
        .order_by(col(LedgerEntry.available_at))
    ).all()
    for _, amount in later:
        running += int(amount)
        low = min(low, running)
    return max(0, low)


@dataclass(frozen=True, slots=True)
class Reversal:
    """What a reversal did: ``reversed`` KRW taken back now, ``shortfall`` KRW that could not be."""

    created: bool  # False: this answer was reversed before (nothing written now), or never paid
    reversed: int
    shortfall: int
    txn_id: int | None


def reversal_key(answer_id: int) -> str:
    return f"reversal:{answer_id}"


def reverse_answer(
    session: Session, *, answer_id: int, worker_id: int, amount: int, reason: str = "", now: datetime | None = None
) -> Reversal:
    """Take back what answer ``answer_id`` earned, once, without any balance going negative.

    The rule (documented in docs/wallet.md):

    * never paid (no ``answer:<id>`` transaction, e.g. a training answer): nothing happens;
    * earning still on hold: the whole amount is cancelled inside "pending" (the reversal leg
      becomes effective at the same instant as the earning, so the two cancel out exactly);
    * earning already available: take back ``min(amount, available now)``; the rest is the
      **shortfall** (the worker already withdrew it). It is logged and written in the memo,
      never booked as debt, and later earnings are never garnished for it;
    * the decision is recorded under ``reversal:<answer_id>`` even when nothing could be taken
      back (a transaction without entries), so repeating it is a no-op forever.
    """
    if amount <= 0:
        raise LedgerError(f"reversal amount must be positive, got {amount}")
    key = reversal_key(answer_id)
    lock_worker(session, worker_id)
    # "now" is read after the lock: debits of one worker are then stamped in the order they
    # run, so none is checked against a moment before another debit that already happened.
    now = now or utcnow()
    existing = find_txn(session, key)
    if existing is not None:
        if existing.worker_id != worker_id:
            raise LedgerError(f"answer {answer_id} was reversed for worker {existing.worker_id}, not {worker_id}")
        taken = -int(
            session.execute(
                select(func.coalesce(func.sum(col(LedgerEntry.amount)), 0)).where(
                    col(LedgerEntry.txn_id) == existing.id, col(LedgerEntry.account) == worker_account(worker_id)
                )
            ).scalar_one()
        )
        return Reversal(False, taken, max(0, amount - taken), existing.id)
    earning = find_txn(session, f"answer:{answer_id}")
    if earning is None:
        return Reversal(False, 0, 0, None)
    if earning.worker_id != worker_id:
        raise LedgerError(f"answer {answer_id} was paid to worker {earning.worker_id}, not {worker_id}")
    leg = (
        session.execute(
            select(LedgerEntry).where(col(LedgerEntry.txn_id) == earning.id, col(LedgerEntry.account) == worker_account(worker_id))
        )
        .scalars()
        .one()
    )
    if amount > leg.amount:
        raise LedgerError(f"answer {answer_id} earned {leg.amount}, cannot reverse {amount}")
    # On hold: cancelled inside "pending", effective with the earning itself; otherwise now.
    effective = max(leg.available_at, now)
    taken = min(amount, spendable(session, worker_id, effective))
    shortfall = amount - taken
    memo = f"shortfall={shortfall}" + (f"; {reason}" if reason else "")
    legs = [Leg(worker_account(worker_id), -taken, effective), Leg(LABELING_EXPENSE, taken, now)] if taken else []
    txn, created = post(
        session,
        key=key,
        kind=EntryKind.REVERSAL,
        legs=legs,
        worker_id=worker_id,
        memo=memo[:2000],
        now=now,
        allow_empty=True,
    )
    if shortfall:
        log.warning("wallet.reversal_shortfall", answer_id=answer_id, worker_id=worker_id, shortfall=shortfall)
    return Reversal(created, taken, shortfall, txn.id)


def reverse_earning(
    session: Session, *, answer_id: int, worker_id: int, amount: int, reason: str = "", now: datetime | None = None
) -> bool:
    """Reverse a rejected answer's earning (see :func:`reverse_answer`); True when recorded now."""
    return reverse_answer(session, answer_id=answer_id, worker_id=worker_id, amount=amount, reason=reason, now=now).created


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
        select(func.coalesce(func.sum(col(LedgerEntry.amount)), 0)).where(col(LedgerEntry.account) == account)
    ).scalar_one()
    return int(total)


def balance(session: Session, worker_id: int, *, now: datetime | None = None, tz: str = "Asia/Seoul") -> Balance:
    now = now or utcnow()
    account = worker_account(worker_id)
    earned_kinds = (EntryKind.EARNING.value, EntryKind.BONUS.value, EntryKind.REVERSAL.value)
    today_start = day_start(now, tz)
    row = session.execute(
        select(
            func.coalesce(func.sum(case((col(LedgerEntry.available_at) <= now, col(LedgerEntry.amount)), else_=0)), 0),
            func.coalesce(func.sum(case((col(LedgerEntry.available_at) > now, col(LedgerEntry.amount)), else_=0)), 0),
            func.coalesce(
                func.sum(
                    case(
                        (
                            (col(LedgerTxn.kind).in_(earned_kinds)) & (col(LedgerEntry.created_at) >= today_start),
                            col(LedgerEntry.amount),
                        ),
                        else_=0,
                    )
                ),
                0,
            ),
            func.coalesce(func.sum(case((col(LedgerTxn.kind).in_(earned_kinds), col(LedgerEntry.amount)), else_=0)), 0),
        )
        .select_from(LedgerEntry)
        .join(LedgerTxn, col(LedgerTxn.id) == col(LedgerEntry.txn_id))
        .where(col(LedgerEntry.account) == account)
    ).one()
    return Balance(available=int(row[0]), pending=int(row[1]), today=int(row[2]), lifetime=int(row[3]))


def ledger_total(session: Session) -> int:
    """Sum over all accounts: zero whenever the books are consistent."""
    return int(session.execute(select(func.coalesce(func.sum(col(LedgerEntry.amount)), 0))).scalar_one())
