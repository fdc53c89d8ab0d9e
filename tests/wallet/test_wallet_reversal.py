"""Reversal of a rejected answer's earning: once, never below zero, shortfall reported."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import utcnow
from bot.db import Database
from bot.wallet import ledger
from bot.wallet.accounts import PAYOUTS_OPEN, worker_account
from bot.wallet.ledger import LedgerError, Leg
from bot.wallet.models import EntryKind, LedgerEntry, LedgerTxn
from tests.wallet.helpers import earn, new_workers


def test_reversal_of_available_earning_is_idempotent(db: Database) -> None:
    (w,) = new_workers(db, 1)
    with db.session() as s:
        earn(s, w, 1, 100)
        earn(s, w, 2, 50)
    assert db.call(ledger.reverse_earning, answer_id=1, worker_id=w, amount=100, reason="spam") is True
    assert db.call(ledger.reverse_earning, answer_id=1, worker_id=w, amount=100, reason="spam") is False
    with db.session() as s:
        bal = ledger.balance(s, w)
        assert (bal.available, bal.pending, bal.lifetime) == (50, 0, 50)
        assert ledger.ledger_total(s) == 0
        txns = s.execute(select(LedgerTxn).where(LedgerTxn.kind == EntryKind.REVERSAL)).scalars().all()
        assert [t.key for t in txns] == ["reversal:1"]
        assert "spam" in (txns[0].memo or "")
        # append-only: the original earning is still there
        assert ledger.find_txn(s, "answer:1") is not None


def test_reversal_of_pending_earning_cancels_inside_pending(db: Database) -> None:
    (w,) = new_workers(db, 1)
    now = utcnow()
    with db.session() as s:
        earn(s, w, 1, 100, hold_days=3, now=now)
        earn(s, w, 2, 30, now=now)
    result = db.call(ledger.reverse_answer, answer_id=1, worker_id=w, amount=100, now=now)
    assert (result.created, result.reversed, result.shortfall) == (True, 100, 0)
    with db.session() as s:
        bal = ledger.balance(s, w, now=now)
        assert (bal.available, bal.pending) == (30, 0)
        later = ledger.balance(s, w, now=now + timedelta(days=4))
        assert (later.available, later.pending) == (30, 0)


def test_shortfall_when_money_was_already_withdrawn(db: Database) -> None:
    (w,) = new_workers(db, 1)
    with db.session() as s:
        earn(s, w, 1, 100)
        earn(s, w, 2, 20)
        # the worker moved 90 out (what a withdrawal does)
        ledger.post(s, key="t-withdraw", kind=EntryKind.WITHDRAWAL, worker_id=w, legs=[Leg(worker_account(w), -90), Leg(PAYOUTS_OPEN, 90)])
    result = db.call(ledger.reverse_answer, answer_id=1, worker_id=w, amount=100)
    assert (result.created, result.reversed, result.shortfall) == (True, 30, 70)
    with db.session() as s:
        assert ledger.balance(s, w).available == 0
        assert ledger.ledger_total(s) == 0
        assert "shortfall=70" in (ledger.find_txn(s, "reversal:1").memo or "")  # type: ignore[union-attr]
    # later earnings are not garnished by repeating the reversal
    with db.session() as s:
        earn(s, w, 3, 500)
    again = db.call(ledger.reverse_answer, answer_id=1, worker_id=w, amount=100)
    assert (again.created, again.reversed, again.shortfall) == (False, 30, 70)
    assert db.call(ledger.balance, w).available == 500


def test_nothing_left_records_an_empty_final_decision(db: Database) -> None:
    (w,) = new_workers(db, 1)
    with db.session() as s:
        earn(s, w, 1, 40)
        ledger.post(s, key="t-withdraw", kind=EntryKind.WITHDRAWAL, worker_id=w, legs=[Leg(worker_account(w), -40), Leg(PAYOUTS_OPEN, 40)])
    result = db.call(ledger.reverse_answer, answer_id=1, worker_id=w, amount=40)
    assert (result.created, result.reversed, result.shortfall) == (True, 0, 40)
    with db.session() as s:
        txn = ledger.find_txn(s, "reversal:1")
        assert txn is not None
        assert s.execute(select(func.count(LedgerEntry.id)).where(LedgerEntry.txn_id == txn.id)).scalar_one() == 0
        earn(s, w, 2, 40)
    assert db.call(ledger.reverse_earning, answer_id=1, worker_id=w, amount=40) is False
    assert db.call(ledger.balance, w).available == 40


def test_never_paid_answer_is_a_no_op(db: Database) -> None:
    (w,) = new_workers(db, 1)
    assert db.call(ledger.reverse_earning, answer_id=77, worker_id=w, amount=10) is False
    with db.session() as s:
        assert ledger.find_txn(s, "reversal:77") is None


def test_bad_input_is_refused_and_changes_nothing(db: Database) -> None:
    a, b = new_workers(db, 2)
    with db.session() as s:
        earn(s, a, 1, 100)
    with pytest.raises(LedgerError, match="positive"):
        db.call(ledger.reverse_earning, answer_id=1, worker_id=a, amount=0)
    with pytest.raises(LedgerError, match="not"):
        db.call(ledger.reverse_earning, answer_id=1, worker_id=b, amount=100)
    with pytest.raises(LedgerError, match="cannot reverse"):
        db.call(ledger.reverse_earning, answer_id=1, worker_id=a, amount=101)
    with pytest.raises(LedgerError, match="does not exist"):
        db.call(ledger.reverse_earning, answer_id=1, worker_id=999, amount=100)
    with db.session() as s:
        assert ledger.find_txn(s, "reversal:1") is None
        assert ledger.balance(s, a).available == 100
    assert db.call(ledger.reverse_earning, answer_id=1, worker_id=a, amount=100) is True
    with pytest.raises(LedgerError, match="reversed for worker"):  # a replay names the wrong worker
        db.call(ledger.reverse_earning, answer_id=1, worker_id=b, amount=100)
