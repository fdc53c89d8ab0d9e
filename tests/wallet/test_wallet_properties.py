"""Property-based: random sequences of earnings, bonuses, reversals, withdrawals, payouts paid or
failed, and time passing, checked against a tiny independent model and the ledger invariants:

* the ledger sums to zero across accounts, after every step;
* no worker's available or pending balance is ever negative, now or at any future instant;
* no answer is paid twice (and a reversal never takes back more than was earned);
* no payout is paid twice, nor both paid and failed; request statuses match the ledger.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot import workers
from bot.db import Database
from bot.db.migrate import upgrade
from bot.wallet import bonus, ledger, payout_accounts, payouts, withdrawals
from bot.wallet.accounts import worker_account
from bot.wallet.ledger import LedgerError
from bot.wallet.models import LedgerEntry, LedgerTxn, Withdrawal
from bot.wallet.payouts import PayoutError
from bot.wallet.withdrawals import WithdrawRefusal

MIN = 1_000
WORKERS = 3
T0 = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wallet-template") / "t.db"
    upgrade(f"sqlite:///{path}")
    db = Database(f"sqlite:///{path}")
    with db.session() as s:
        for i in range(WORKERS):
            worker, _ = workers.register(s, tg_id=9000 + i, name=f"p{i}")
            payout_accounts.save(s, worker.id, bank="KB", number=f"12345678{i}0")  # type: ignore[arg-type]
    db.dispose()
    return path


@contextmanager
def fresh_db(template: Path) -> Iterator[Database]:
    folder = Path(tempfile.mkdtemp(prefix="wallet-prop-"))
    shutil.copy(template, folder / "t.db")
    db = Database(f"sqlite:///{folder / 't.db'}")
    try:
        yield db
    finally:
        db.dispose()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Model:
    """Independent bookkeeping: (worker, amount, available_at) per movement of worker money."""

    now: datetime = T0
    moves: list[tuple[int, int, datetime]] = field(default_factory=list)
    earned: dict[int, tuple[int, int, datetime]] = field(default_factory=dict)  # answer -> (worker, amount, at)
    reversed: set[int] = field(default_factory=set)
    bonuses: set[tuple[str, int]] = field(default_factory=set)
    requests: dict[int, tuple[int, int, str]] = field(default_factory=dict)  # id -> (worker, amount, status)

    def available(self, w: int, at: datetime | None = None) -> int:
        at = at or self.now
        return sum(a for ww, a, t in self.moves if ww == w and t <= at)

    def pending(self, w: int) -> int:
        return sum(a for ww, a, t in self.moves if ww == w and t > self.now)

    def has_open(self, w: int) -> bool:
        return any(ww == w and st_ == "open" for ww, _, st_ in self.requests.values())


ops = st.one_of(
    st.tuples(st.just("earn"), st.integers(0, WORKERS - 1), st.integers(1, 5), st.integers(1, 6_000), st.sampled_from([0, 0, 1, 3])),
    st.tuples(st.just("bonus"), st.integers(0, WORKERS - 1), st.sampled_from(["c1", "c2"]), st.integers(1, 5_000)),
    # reverse: answer id, and whether to name the wrong worker (bad input)
    st.tuples(st.just("reverse"), st.integers(1, 5), st.sampled_from([False, False, False, True])),
    # withdraw: an amount, or None for "everything available" (the case that makes reversals short)
    st.tuples(st.just("withdraw"), st.integers(0, WORKERS - 1), st.one_of(st.none(), st.integers(1, 15_000))),
    st.tuples(st.just("pay"), st.integers(0, 20)),
    st.tuples(st.just("fail"), st.integers(0, 20)),
    st.tuples(st.just("time"), st.sampled_from([3600, 86_400, 2 * 86_400])),
)


def _worker_ids(db: Database) -> list[int]:
    with db.session() as s:
        return [workers.get_by_tg(s, 9000 + i).id for i in range(WORKERS)]  # type: ignore[union-attr]


def _apply(db: Database, m: Model, ids: list[int], op: tuple) -> None:  # type: ignore[type-arg]
    kind = op[0]
    if kind == "earn":
        _, wi, answer, amount, hold = op
        w = ids[wi]
        answer_owner = m.earned.get(answer)
        amount_to_post = amount
        created = db.call(ledger.credit_earning, worker_id=w, answer_id=answer, amount=amount_to_post, hold_days=hold, now=m.now)
        assert created == (answer_owner is None), "an answer was paid twice"
        if created:
            at = m.now + timedelta(days=hold)
            m.earned[answer] = (w, amount, at)
            m.moves.append((w, amount, at))
    elif kind == "bonus":
        _, wi, campaign, amount = op
        w = ids[wi]
        created = db.call(bonus.grant, w, amount, campaign=campaign, now=m.now)
        assert created == ((campaign, w) not in m.bonuses)
        if created:
            m.bonuses.add((campaign, w))
            m.moves.append((w, amount, m.now))
    elif kind == "reverse":
        _, answer, wrong = op
        paid = m.earned.get(answer)
        if paid is None:
            assert db.call(ledger.reverse_earning, answer_id=answer, worker_id=ids[0], amount=1, now=m.now) is False
            return
        owner, amount, at = paid
        w = ids[(ids.index(owner) + 1) % len(ids)] if wrong else owner
        if owner != w:
            with pytest.raises(LedgerError):
                db.call(ledger.reverse_earning, answer_id=answer, worker_id=w, amount=amount, now=m.now)
            return
        result = db.call(ledger.reverse_answer, answer_id=answer, worker_id=w, amount=amount, now=m.now)
        if answer in m.reversed:
            assert result.created is False
            return
        m.reversed.add(answer)
        if at > m.now:  # still on hold: cancelled entirely, effective with the earning
            expected, effective = amount, at
        else:
            expected, effective = min(amount, m.available(w)), m.now
        assert (result.created, result.reversed, result.shortfall) == (True, expected, amount - expected)
        if expected:
            m.moves.append((w, -expected, effective))
    elif kind == "withdraw":
        _, wi, amount = op
        w = ids[wi]
        if amount is None:
            amount = max(1, m.available(w))
        got = db.call(withdrawals.request, w, amount, minimum=MIN, now=m.now)
        if m.has_open(w):
            assert got == WithdrawRefusal.ALREADY_OPEN
        elif amount < MIN:
            assert got == WithdrawRefusal.BELOW_MINIMUM
        elif amount > m.available(w):
            assert got == WithdrawRefusal.INSUFFICIENT
        else:
            assert isinstance(got, Withdrawal), got
            m.requests[got.id] = (w, amount, "open")  # type: ignore[index]
            m.moves.append((w, -amount, m.now))
    elif kind in ("pay", "fail"):
        if not m.requests:
            return
        wid = sorted(m.requests)[op[1] % len(m.requests)]
        w, amount, status = m.requests[wid]
        target = "paid" if kind == "pay" else "failed"
        call = (
            (lambda: db.call(payouts.mark_paid, [wid], now=m.now))
            if kind == "pay"
            else (lambda: db.call(payouts.fail, [wid], reason="bounced", now=m.now))
        )
        if status not in ("open", target):
            with pytest.raises(PayoutError):
                call()
            return
        result = call()
        if status == "open":
            assert result.changed == [wid]
            m.requests[wid] = (w, amount, target)
            if target == "failed":
                m.moves.append((w, amount, m.now))
        else:
            assert result.unchanged == [wid] and result.amount == 0
    elif kind == "time":
        m.now += timedelta(seconds=op[1])


def _check(db: Database, m: Model, ids: list[int]) -> None:
    with db.session() as s:
        assert ledger.ledger_total(s) == 0
        assert payouts.consistency_problems(s) == []
        for w in ids:
            bal = ledger.balance(s, w, now=m.now)
            assert (bal.available, bal.pending) == (m.available(w), m.pending(w))
            assert bal.available >= 0 and bal.pending >= 0
            future = sorted({t for ww, _, t in m.moves if ww == w and t > m.now})
            for t in future:
                assert ledger.balance(s, w, now=t).available >= 0
        # no answer paid twice; a reversal never takes back more than the answer earned
        per_answer = s.execute(
            select(LedgerTxn.key, func.sum(LedgerEntry.amount))
            .join(LedgerEntry, LedgerEntry.txn_id == LedgerTxn.id)
            .where(LedgerEntry.account.like("worker:%"), LedgerTxn.key.like("answer:%"))
            .group_by(LedgerTxn.key)
        ).all()
        for key, total in per_answer:
            answer = int(key.split(":")[1])
            assert total == m.earned[answer][1]
            taken = -int(
                s.execute(
                    select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                    .join(LedgerTxn, LedgerEntry.txn_id == LedgerTxn.id)
                    .where(LedgerTxn.key == f"reversal:{answer}", LedgerEntry.account == worker_account(m.earned[answer][0]))
                ).scalar_one()
            )
            assert 0 <= taken <= total
        paid_keys = s.execute(select(LedgerTxn.key).where(LedgerTxn.key.like("payout:%"))).scalars().all()
        by_request = [k.split(":")[1] for k in paid_keys]
        assert len(by_request) == len(set(by_request)), "a payout was closed twice"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=35))
# the paths that matter most, always tried: a reversal after the money was withdrawn (shortfall),
# a reversal during the hold, a failed payout returning money that is then reversed
@example([("earn", 0, 1, 3_000, 0), ("earn", 0, 2, 500, 0), ("withdraw", 0, None), ("reverse", 1, False), ("pay", 0)])
@example([("earn", 1, 1, 2_000, 3), ("reverse", 1, False), ("time", 2 * 86_400), ("time", 2 * 86_400), ("reverse", 1, True)])
@example([("earn", 2, 3, 4_000, 0), ("withdraw", 2, 4_000), ("fail", 0), ("reverse", 3, False), ("withdraw", 2, None), ("pay", 0)])
def test_random_histories_keep_the_books(template: Path, history: list) -> None:  # type: ignore[type-arg]
    with fresh_db(template) as db:
        ids = _worker_ids(db)
        m = Model()
        for op in history:
            _apply(db, m, ids, op)
            _check(db, m, ids)
