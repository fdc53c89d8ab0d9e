"""Withdrawal requests, payout accounts, operators' paid / failed: rules and idempotency."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.clock import utcnow
from bot.db import Database
from bot.wallet import ledger, payout_accounts, payouts, withdrawals
from bot.wallet.accounts import PAID_OUT, PAYOUTS_OPEN
from bot.wallet.models import LedgerTxn, Withdrawal, WithdrawalStatus
from bot.wallet.payout_accounts import PayoutAccountError
from bot.wallet.payouts import PayoutError
from bot.wallet.withdrawals import WithdrawRefusal
from tests.wallet.helpers import earn, new_workers

MIN = 10_000


def _funded(db: Database, amount: int = 25_000, *, account: bool = True) -> int:
    (w,) = new_workers(db, 1)
    with db.session() as s:
        earn(s, w, 1, amount)
        if account:
            payout_accounts.save(s, w, bank="KB국민", number="123-45-678901", holder="홍길동")
    return w


def _request(db: Database, w: int, amount: int):  # type: ignore[no-untyped-def]
    return db.call(withdrawals.request, w, amount, minimum=MIN, chat_id=777)


def test_payout_account_is_validated_and_masked(db: Database) -> None:
    (w,) = new_workers(db, 1)
    with pytest.raises(PayoutAccountError) as bad:
        db.call(payout_accounts.save, w, bank="KB", number="12ab")
    assert bad.value.code == "bad_number"
    with pytest.raises(PayoutAccountError):
        db.call(payout_accounts.save, w, bank="   ", number="1234567890")
    assert db.call(payout_accounts.view, w) is None  # nothing was stored
    view = db.call(payout_accounts.save, w, bank=" 신한  은행 ", number="110 123 456789")
    assert (view.bank, view.masked) == ("신한 은행", "****6789")
    with db.session() as s:
        assert payout_accounts.get(s, w).account_number == "110123456789"  # type: ignore[union-attr]
    assert withdrawals.parse_amount("12,000원") == 12_000
    assert withdrawals.parse_amount("₩ 10 000") == 10_000
    assert withdrawals.parse_amount("-5") is None and withdrawals.parse_amount("ten") is None


def test_request_moves_money_out_of_available_at_once(db: Database) -> None:
    w = _funded(db)
    got = _request(db, w, 12_000)
    assert isinstance(got, Withdrawal) and got.status == WithdrawalStatus.OPEN
    assert (got.bank, got.account_number, got.chat_id) == ("KB국민", "12345678901", 777)
    with db.session() as s:
        assert ledger.balance(s, w).available == 13_000
        assert ledger.account_balance(s, PAYOUTS_OPEN) == 12_000
        assert ledger.find_txn(s, f"withdrawal:{got.id}") is not None
        assert payouts.consistency_problems(s) == []


def test_request_refusals_change_nothing(db: Database) -> None:
    w = _funded(db, 25_000, account=False)
    assert _request(db, w, 12_000) == WithdrawRefusal.NO_ACCOUNT
    db.call(payout_accounts.save, w, bank="KB", number="1234567890")
    assert _request(db, w, MIN - 1) == WithdrawRefusal.BELOW_MINIMUM
    assert _request(db, w, 25_001) == WithdrawRefusal.INSUFFICIENT
    assert _request(db, w, 0) == WithdrawRefusal.INVALID
    assert isinstance(_request(db, w, 10_000), Withdrawal)
    assert _request(db, w, 10_000) == WithdrawRefusal.ALREADY_OPEN
    with db.session() as s:
        assert s.execute(select(func.count(Withdrawal.id))).scalar_one() == 1
        assert ledger.balance(s, w).available == 15_000


def test_pending_money_cannot_be_withdrawn(db: Database) -> None:
    w = _funded(db, 5_000)
    now = utcnow()
    with db.session() as s:
        earn(s, w, 2, 20_000, hold_days=7, now=now)
    assert _request(db, w, 10_000) == WithdrawRefusal.INSUFFICIENT
    quote = db.call(withdrawals.quote, w, minimum=MIN)
    assert (quote.available, quote.can_withdraw) == (5_000, False)
    later = db.call(withdrawals.request, w, 25_000, minimum=MIN, now=now + timedelta(days=7, seconds=1))
    assert isinstance(later, Withdrawal)


def test_database_refuses_a_second_open_request(db: Database) -> None:
    """The partial unique index holds even if code skipped the check."""
    w = _funded(db)
    assert isinstance(_request(db, w, 10_000), Withdrawal)
    with pytest.raises(IntegrityError):
        with db.session() as s:
            s.add(Withdrawal(worker_id=w, amount=1, bank="x", account_number="1"))
            s.flush()
    with db.session() as s:  # closed ones do not count
        s.add(Withdrawal(worker_id=w, amount=1, bank="x", account_number="1", status=WithdrawalStatus.PAID))


def test_mark_paid_is_idempotent_and_final(db: Database) -> None:
    w = _funded(db)
    wd = _request(db, w, 20_000)
    first = db.call(payouts.mark_paid, [wd.id])
    again = db.call(payouts.mark_paid, [wd.id, wd.id])
    assert (first.changed, first.amount) == ([wd.id], 20_000)
    assert (again.changed, again.unchanged, again.amount) == ([], [wd.id], 0)
    with pytest.raises(PayoutError, match="already paid"):
        db.call(payouts.fail, [wd.id], reason="bounced")
    with db.session() as s:
        assert ledger.account_balance(s, PAID_OUT) == 20_000
        assert ledger.account_balance(s, PAYOUTS_OPEN) == 0
        assert s.execute(select(func.count(LedgerTxn.id)).where(LedgerTxn.key.like("payout:%"))).scalar_one() == 1
        assert ledger.balance(s, w).available == 5_000
        assert payouts.consistency_problems(s) == []
    # a new request is possible once the old one is closed
    with db.session() as s:
        earn(s, w, 2, 5_000)
    assert isinstance(_request(db, w, 10_000), Withdrawal)


def test_fail_returns_the_money_once(db: Database) -> None:
    w = _funded(db)
    wd = _request(db, w, 20_000)
    with pytest.raises(PayoutError, match="reason"):
        db.call(payouts.fail, [wd.id], reason="  ")
    res = db.call(payouts.fail, [wd.id], reason="wrong  account number")
    assert res.changed == [wd.id]
    assert db.call(payouts.fail, [wd.id], reason="again").unchanged == [wd.id]
    with pytest.raises(PayoutError, match="already failed"):
        db.call(payouts.mark_paid, [wd.id])
    with db.session() as s:
        assert ledger.balance(s, w).available == 25_000
        got = s.get(Withdrawal, wd.id)
        assert got.status == WithdrawalStatus.FAILED and got.reason == "wrong account number"  # type: ignore[union-attr]
        assert payouts.consistency_problems(s) == []


def test_batch_with_unknown_id_changes_nothing(db: Database) -> None:
    w = _funded(db)
    wd = _request(db, w, 20_000)
    with pytest.raises(PayoutError, match=r"unknown withdrawal id.*999"):
        db.call(payouts.mark_paid, [wd.id, 999])
    with pytest.raises(PayoutError, match="no withdrawal ids"):
        db.call(payouts.mark_paid, [])
    with db.session() as s:
        assert s.get(Withdrawal, wd.id).status == WithdrawalStatus.OPEN  # type: ignore[union-attr]


def test_crash_inside_mark_paid_leaves_request_open(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Status change and ledger posting are one transaction: a crash between them undoes both."""
    w = _funded(db)
    wd = _request(db, w, 20_000)

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("power cut")

    monkeypatch.setattr(payouts.ledger, "post", boom)
    with pytest.raises(RuntimeError):
        db.call(payouts.mark_paid, [wd.id])
    monkeypatch.undo()
    with db.session() as s:
        assert s.get(Withdrawal, wd.id).status == WithdrawalStatus.OPEN  # type: ignore[union-attr]
        assert payouts.consistency_problems(s) == []
    assert db.call(payouts.mark_paid, [wd.id]).changed == [wd.id]  # the next run completes it


def test_crash_inside_request_leaves_no_request(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    w = _funded(db)

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("power cut")

    monkeypatch.setattr(withdrawals.ledger, "post", boom)
    with pytest.raises(RuntimeError):
        _request(db, w, 20_000)
    monkeypatch.undo()
    with db.session() as s:
        assert s.execute(select(func.count(Withdrawal.id))).scalar_one() == 0
        assert ledger.balance(s, w).available == 25_000
    assert isinstance(_request(db, w, 20_000), Withdrawal)


def test_export_is_read_only_and_atomic(db: Database, tmp_path: Path) -> None:
    a = _funded(db)
    wd = _request(db, a, 15_000)
    out = tmp_path / "out" / "payouts.csv"
    with db.read_session() as s:
        count, total = payouts.write_csv(payouts.export_rows(s, batch=1), out)
    assert (count, total) == (1, 15_000)
    text = out.read_text(encoding="utf-8-sig").splitlines()
    assert text[0].split(",") == list(payouts.EXPORT_COLUMNS)
    assert text[1].startswith(f"{wd.id},{a},w0,KB국민,12345678901,홍길동,15000,")
    assert not (out.parent / "payouts.csv.part").exists()
    with db.session() as s:
        assert s.get(Withdrawal, wd.id).status == WithdrawalStatus.OPEN  # type: ignore[union-attr]


def test_notices_are_claimed_once_and_retried_after_a_crash(db: Database) -> None:
    w = _funded(db)
    wd = _request(db, w, 20_000)
    now = utcnow()
    assert db.call(payouts.claim_notices, now=now) == []  # nothing to tell while open
    db.call(payouts.mark_paid, [wd.id])
    (notice,) = db.call(payouts.claim_notices, now=now)
    assert (notice.chat_id, notice.status, notice.amount, notice.masked) == (777, "paid", 20_000, "****8901")
    assert db.call(payouts.claim_notices, now=now) == []  # another replica does not get it
    # the sender died: after the claim runs out it is offered again
    (again,) = db.call(payouts.claim_notices, now=now + payouts.NOTIFY_CLAIM + timedelta(seconds=1))
    db.call(payouts.mark_notified, again.withdrawal_id)
    assert db.call(payouts.claim_notices, now=now + timedelta(hours=1)) == []
    # marking paid again does not re-notify
    db.call(payouts.mark_paid, [wd.id])
    assert db.call(payouts.claim_notices, now=now + timedelta(hours=2)) == []


def test_a_debit_stamped_later_is_respected_by_earlier_checks(db: Database) -> None:
    """Clocks of two processes differ: a debit dated a little ahead must still count, so an
    operation checked "at an earlier moment" can never overdraw the account later."""
    w = _funded(db, 0)
    t0 = utcnow()
    with db.session() as s:
        earn(s, w, 10, 20_000, now=t0)
    ahead = db.call(withdrawals.request, w, 20_000, minimum=MIN, now=t0 + timedelta(seconds=10))
    assert isinstance(ahead, Withdrawal)
    behind = t0 + timedelta(seconds=5)
    assert db.call(withdrawals.request, w, 10_000, minimum=MIN, now=behind) == WithdrawRefusal.ALREADY_OPEN
    db.call(payouts.mark_paid, [ahead.id])
    assert db.call(withdrawals.request, w, 10_000, minimum=MIN, now=behind) == WithdrawRefusal.INSUFFICIENT
    assert db.call(withdrawals.quote, w, minimum=MIN, now=behind).available == 0
    result = db.call(ledger.reverse_answer, answer_id=10, worker_id=w, amount=20_000, now=behind)
    assert (result.reversed, result.shortfall) == (0, 20_000)
    with db.session() as s:
        assert ledger.spendable(s, w, behind) == 0
        assert ledger.balance(s, w, now=t0 + timedelta(hours=1)).available == 0
        assert payouts.consistency_problems(s) == []
