"""``crowdpin admin payouts ...`` and ``crowdpin admin bonus`` against a real SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.config import get_settings
from bot.db import Database
from bot.tasks import projects
from bot.tasks.models import WorkerProject
from bot.wallet import ledger, payout_accounts, payouts, withdrawals
from bot.wallet.models import Withdrawal, WithdrawalStatus
from tests.wallet.helpers import earn, new_workers


@pytest.fixture
def run(db: Database, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:  # type: ignore[type-arg]
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: object, code: int = 0):  # type: ignore[no-untyped-def]
        from admin.cli import app

        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        return result

    yield invoke
    get_settings.cache_clear()


def _requests(db: Database, n: int) -> tuple[list[int], list[int]]:
    ids = new_workers(db, n)
    out = []
    with db.session() as s:
        for i, w in enumerate(ids):
            earn(s, w, i + 1, 30_000)
            payout_accounts.save(s, w, bank="신한", number=f"110-000-00{i:04d}")
            out.append(withdrawals.request(s, w, 10_000 + i, minimum=10_000).id)  # type: ignore[union-attr]
    return ids, out


def test_list_export_mark_paid_fail(run, db: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    workers, (a, b, c) = _requests(db, 3)
    listed = run("payouts", "list")
    assert "3 request(s), ₩30,003" in listed.stdout
    assert "****0001" in listed.stdout and "110000000001" not in listed.stdout

    out = tmp_path / "bank.csv"
    run("payouts", "export", "--out", out)
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == 4 and lines[1].split(",")[4] == "110000000000"

    assert "marked paid: 1 2" in run("payouts", "mark-paid", a, b).stdout
    again = run("payouts", "mark-paid", a, b)
    assert "already paid, unchanged: 1 2" in again.stdout and "marked" not in again.stdout
    bad = run("payouts", "fail", c, 999, "--reason", "closed", code=1)
    assert "unknown withdrawal id(s): 999" in bad.stderr and "nothing was changed" in bad.stderr
    run("payouts", "fail", c, "--reason", code=2)  # a reason is required
    assert "marked failed: 3" in run("payouts", "fail", c, "--reason", "account closed").stdout
    assert "already paid" in run("payouts", "fail", a, "--reason", "x", code=1).stderr
    assert "ok: 0 open request(s)" in run("payouts", "check").stdout
    assert "0 request(s)" in run("payouts", "list").stdout
    everything = run("payouts", "list", "--status", "all").stdout
    assert "3 request(s)" in everything and "failed" in everything and "closed" in everything
    with db.session() as s:
        assert [s.get(Withdrawal, i).status for i in (a, b, c)] == ["paid", "paid", "failed"]  # type: ignore[union-attr]
        assert ledger.balance(s, workers[2]).available == 30_000
        assert payouts.consistency_problems(s) == []


def test_export_changes_nothing(run, db: Database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, ids = _requests(db, 2)
    run("payouts", "export", "--out", tmp_path / "x.csv")
    run("payouts", "export", "--out", tmp_path / "x.csv")
    with db.session() as s:
        assert all(s.get(Withdrawal, i).status == WithdrawalStatus.OPEN for i in ids)  # type: ignore[union-attr]


def test_bonus_for_one_worker_and_by_accuracy(run, db: Database) -> None:  # type: ignore[no-untyped-def]
    ids = new_workers(db, 3)
    with db.session() as s:
        p = projects.create(s, name="cats", labels=["a", "b"])
        for w, (correct, total) in zip(ids, [(18, 19), (9, 10), (1, 1)], strict=True):
            s.add(WorkerProject(worker_id=w, project_id=p.id, golden_correct=correct, golden_total=total))
    assert f"paid ₩1,000 to worker {ids[0]}" in run("bonus", "--campaign", "welcome", "--amount", 1000, "--worker", ids[0]).stdout
    assert "already got welcome" in run("bonus", "--campaign", "welcome", "--amount", 1000, "--worker", ids[0]).stdout

    dry = run("bonus", "--campaign", "acc-nov", "--amount", 500, "--project", "cats", "--min-accuracy", 0.9, "--dry-run")
    assert "would pay 1 worker(s)" in dry.stdout  # 18/19 -> 0.925; 9/10 -> 0.864; 1/1 -> 0.75
    assert db.call(ledger.balance, ids[0]).available == 1000
    assert "paid 1 worker(s)" in run("bonus", "--campaign", "acc-nov", "--amount", 500, "--project", "cats", "--min-accuracy", 0.9).stdout
    rerun = run("bonus", "--campaign", "acc-nov", "--amount", 500, "--project", "cats", "--min-accuracy", 0.8)
    assert "paid 1 worker(s) ₩500 each; 1 already had acc-nov" in rerun.stdout
    assert [db.call(ledger.balance, w).available for w in ids] == [1500, 500, 0]

    assert "either --worker" in run("bonus", "--campaign", "x", "--amount", 1, code=1).stderr
    assert "positive" in run("bonus", "--campaign", "x", "--amount", -5, "--worker", ids[0], code=1).stderr
    assert "does not exist" in run("bonus", "--campaign", "x", "--amount", 5, "--worker", 999, code=1).stderr
    assert "needs --min-accuracy" in run("bonus", "--campaign", "x", "--amount", 5, "--project", "cats", code=1).stderr
    with db.session() as s:
        assert ledger.ledger_total(s) == 0
