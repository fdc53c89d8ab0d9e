"""Paying an answer is one posting per key on both engines: on PostgreSQL the key claim and
both legs go as one statement (``ledger._POST_TWO_LEGS``), on SQLite as two. A replay, in
turn or at the same moment from another connection, writes nothing and says so."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.clock import utcnow
from bot.db import Database
from bot.wallet import ledger
from bot.wallet.accounts import LABELING_EXPENSE, worker_account
from bot.wallet.models import LedgerEntry, LedgerTxn
from tests.wallet.helpers import earn, new_workers
from tests.wallet.test_wallet_concurrency import _run_all


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue("db" if request.param == "sqlite" else "pg_db")


def _books(db: Database, key: str) -> tuple[int, list[tuple[str, int]]]:
    with db.session() as s:
        txns = s.execute(select(func.count()).select_from(LedgerTxn).where(LedgerTxn.key == key)).scalar_one()
        legs = s.execute(
            select(LedgerEntry.account, LedgerEntry.amount)
            .join(LedgerTxn, LedgerTxn.id == LedgerEntry.txn_id)
            .where(LedgerTxn.key == key)
            .order_by(LedgerEntry.amount)
        ).all()
    return int(txns), [(str(a), int(m)) for a, m in legs]


def test_an_answer_is_paid_once_with_both_legs(any_db: Database) -> None:
    (w,) = new_workers(any_db, 1)
    now = utcnow()
    assert any_db.call(earn, w, 41, 700, hold_days=3, now=now) is True
    assert any_db.call(earn, w, 41, 700, hold_days=3, now=now) is False  # a replay
    assert any_db.call(earn, w, 41, 900, now=now) is False  # the key decides, not the amount
    txns, legs = _books(any_db, "answer:41")
    assert txns == 1
    assert legs == [(LABELING_EXPENSE, -700), (worker_account(w), 700)]
    with any_db.session() as s:
        held = s.execute(select(LedgerEntry.available_at).where(LedgerEntry.account == worker_account(w))).scalar_one()
        assert abs((held - (now + timedelta(days=3))).total_seconds()) < 1  # the hold is on the worker's leg
        assert ledger.available_balance(s, w, now) == 0
        assert ledger.available_balance(s, w, now + timedelta(days=3, seconds=1)) == 700


def test_the_same_answer_paid_from_many_connections_at_once_is_paid_once(any_db: Database) -> None:
    (w,) = new_workers(any_db, 1)
    results: list[bool] = []

    def pay() -> None:
        results.append(any_db.call(earn, w, 77, 500))

    assert _run_all([pay] * 6) == []
    assert sorted(results) == [False] * 5 + [True]
    assert _books(any_db, "answer:77") == (1, [(LABELING_EXPENSE, -500), (worker_account(w), 500)])
