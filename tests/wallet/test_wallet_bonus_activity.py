"""Bonuses (one worker, or by accuracy rule) and the plain-words activity list of /balance."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot import workers
from bot.clock import utcnow
from bot.db import Database
from bot.tasks import projects
from bot.tasks.models import WorkerProject
from bot.wallet import activity, bonus, ledger, payout_accounts, payouts, withdrawals
from bot.wallet.bonus import BonusError
from bot.wallet.models import EntryKind
from bot.work import bonuses
from tests.wallet.helpers import earn, new_workers


def test_smoothed_accuracy() -> None:
    assert bonuses.smoothed_accuracy(0, 0) == 0.5
    assert bonuses.smoothed_accuracy(1, 1) == 0.75  # one lucky answer is not 100 %
    assert bonuses.smoothed_accuracy(19, 19) == pytest.approx(0.975)


def test_grant_is_once_per_campaign_and_worker(db: Database) -> None:
    (w,) = new_workers(db, 1)
    assert db.call(bonus.grant, w, 1_000, campaign="weekly-48") is True
    assert db.call(bonus.grant, w, 1_000, campaign="weekly-48") is False
    assert db.call(bonus.grant, w, 500, campaign="weekly-49") is True
    with db.session() as s:
        bal = ledger.balance(s, w)
        assert (bal.available, bal.lifetime) == (1_500, 1_500)
        assert ledger.ledger_total(s) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount": 0, "campaign": "c"}, "positive"),
        ({"amount": 100, "campaign": "has space"}, "campaign"),
        ({"amount": 100, "campaign": ""}, "campaign"),
        ({"amount": 10**9, "campaign": "c"}, "typo"),
    ],
)
def test_bad_bonus_input_is_refused(db: Database, kwargs: dict, message: str) -> None:
    (w,) = new_workers(db, 1)
    with pytest.raises(BonusError, match=message):
        db.call(bonus.grant, w, **kwargs)
    with pytest.raises(BonusError, match="does not exist"):
        db.call(bonus.grant, 9999, 100, campaign="c")
    assert db.call(ledger.balance, w).lifetime == 0


def test_by_accuracy_uses_smoothed_golden_counts(db: Database) -> None:
    ids = new_workers(db, 4)
    with db.session() as s:
        p = projects.create(s, name="acc", labels=["a", "b"])
        for wid, (c, t) in zip(ids, [(19, 20), (1, 1), (5, 10), (30, 30)], strict=True):
            s.add(WorkerProject(worker_id=wid, project_id=p.id, golden_correct=c, golden_total=t))
        workers.ban(s, ids[3], "cheating")
    found = db.call(bonuses.by_accuracy, p.id, min_accuracy=0.9)
    assert [c.worker_id for c in found] == [ids[0]]  # 1/1 -> 0.75, 5/10 -> 0.5, banned left out
    assert found[0].accuracy == pytest.approx(19.5 / 21)
    assert [c.worker_id for c in db.call(bonuses.by_accuracy, p.id, min_accuracy=0.7, min_golden=5)] == [ids[0]]
    with pytest.raises(BonusError, match="between 0 and 1"):
        db.call(bonuses.by_accuracy, p.id, min_accuracy=90)
    with pytest.raises(BonusError, match="project 999"):
        db.call(bonuses.by_accuracy, 999, min_accuracy=0.9)


def test_activity_groups_earnings_and_names_the_rest(db: Database) -> None:
    (w,) = new_workers(db, 1)
    now = utcnow()
    with db.session() as s:
        for i in range(12):
            earn(s, w, i + 1, 10, now=now - timedelta(days=1))
        for i in range(3):
            earn(s, w, 100 + i, 10, hold_days=2, now=now)
        bonus.grant(s, w, 20_000, campaign="welcome", now=now)
        payout_accounts.save(s, w, bank="KB", number="1234567890")
        wd = withdrawals.request(s, w, 10_000, minimum=10_000, now=now)
        payouts.fail(s, [wd.id], reason="bad account", now=now)  # type: ignore[union-attr]
        ledger.reverse_answer(s, answer_id=100, worker_id=w, amount=10, now=now)
    lines = db.call(activity.recent, w, limit=10, now=now)
    kinds = [(line.kind, line.amount, line.count) for line in lines]
    assert kinds == [
        (EntryKind.REVERSAL, -10, 1),
        (EntryKind.PAYOUT_FAILURE, 10_000, 1),
        (EntryKind.WITHDRAWAL, -10_000, 1),
        (EntryKind.BONUS, 20_000, 1),
        (EntryKind.EARNING, 30, 3),
        (EntryKind.EARNING, 120, 12),
    ]
    assert lines[1].note == "bad account" and lines[3].note == "welcome"
    assert lines[4].pending_until is not None and lines[5].pending_until is None
    assert len(db.call(activity.recent, w, limit=2, now=now)) == 2
