"""Rejecting a cheater: answers rejected (never deleted), pay reversed once, tasks reopened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.config import get_settings
from bot.db import Database
from bot.tasks import quality
from bot.tasks.aggregate import aggregate_project
from bot.tasks.models import Answer, Task, WorkerProject
from bot.tasks.service import NoTask, Submitted, TaskCard
from bot.wallet.accounts import LABELING_EXPENSE
from bot.wallet.ledger import account_balance, balance, ledger_total
from bot.wallet.models import LedgerTxn
from bot.work import rejection
from bot.workers.models import Worker
from tests.quality.helpers import Driver, make_project, make_workers


def _work(db: Database, worker_id: int, value: str, n: int) -> list[int]:
    d = Driver(db, worker_id)
    tasks = []
    for _ in range(n):
        card = d.next()
        assert isinstance(card, TaskCard)
        result = d.answer(card, value)
        assert isinstance(result, Submitted)
        tasks.append(card.task_id)
    return tasks


def test_reject_reverses_pay_reopens_tasks_and_is_idempotent(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=3, overlap=2, price=15, hold_days=3)
    honest, cheat = make_workers(db, 2)
    _work(db, honest, "a", 3)
    _work(db, cheat, "c", 3)
    with db.session() as s:
        assert set(s.execute(select(Task.status)).scalars()) == {"done"}
        assert balance(s, cheat).pending == 45
    with db.session() as s:
        report = rejection.reject_worker(s, cheat, reason="clicked at random")
    assert (report.answers, report.reversed, report.shortfall, report.tasks_reopened) == (3, 45, 0, 3)
    assert report.projects == [project.id]
    with db.session() as s:
        statuses = s.execute(select(Answer.status, func.count()).where(Answer.worker_id == cheat).group_by(Answer.status)).all()
        assert statuses == [("rejected", 3)]  # kept, not deleted
        assert balance(s, cheat).total == 0
        assert balance(s, honest).total == 45
        assert account_balance(s, LABELING_EXPENSE) == -45
        assert ledger_total(s) == 0
        reversals = s.execute(select(func.count(LedgerTxn.id)).where(LedgerTxn.kind == "reversal")).scalar_one()
        assert reversals == 3
        tasks = list(s.execute(select(Task)).scalars())
        assert {(t.status, t.answers_count, t.taken, t.result) for t in tasks} == {("open", 1, 1, "a")}
        wp = quality.find_standing(s, cheat, project.id)
        assert wp is not None and (wp.stage, wp.blocked_reason) == ("blocked", "operator")
        rows = list(aggregate_project(s, project.id, "majority_vote"))
        assert [r.n_answers for r in rows] == [1, 1, 1] and {r.label for r in rows} == {"a"}
    with db.session() as s:
        again = rejection.reject_worker(s, cheat)
    assert (again.answers, again.reversed) == (0, 0)
    with db.session() as s:
        assert s.execute(select(func.count(LedgerTxn.id)).where(LedgerTxn.kind == "reversal")).scalar_one() == 3
    # the reopened tasks take a replacement answer from someone new, never from the cheater
    (third,) = make_workers(db, 1, base=9000)
    assert len(_work(db, third, "a", 3)) == 3
    blocked = Driver(db, cheat).next()
    assert isinstance(blocked, NoTask) and blocked.notice is not None and blocked.notice.key == "quality.blocked.operator"


@pytest.fixture
def cli_env(db: Database, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_reject_worker_cli(db: Database, tmp_path: Path, cli_env: None) -> None:
    from admin.cli import app

    project = make_project(db, tmp_path / "imgs", count=2, overlap=1, price=10)
    (cheat,) = make_workers(db, 1)
    _work(db, cheat, "b", 2)
    with db.session() as s:
        tg_id = s.get(Worker, cheat).tg_id  # type: ignore[union-attr]
    runner = CliRunner()
    bad = runner.invoke(app, ["reject-worker", "nobody"])
    assert bad.exit_code == 1 and "use a worker id" in bad.output
    missing = runner.invoke(app, ["reject-worker", "tg:1"])
    assert missing.exit_code == 1 and "no worker" in missing.output
    dry = runner.invoke(app, ["reject-worker", f"tg:{tg_id}", "--dry-run"])
    assert dry.exit_code == 0 and "2 accepted answers" in dry.output and "₩20" in dry.output
    declined = runner.invoke(app, ["reject-worker", str(cheat)], input="n\n")
    assert declined.exit_code == 1
    with db.session() as s:
        assert s.execute(select(func.count(Answer.id)).where(Answer.status == "accepted")).scalar_one() == 2
    done = runner.invoke(app, ["reject-worker", str(cheat), "--project", str(project.id), "--reason", "bot", "--yes"])
    assert done.exit_code == 0, done.output
    assert "₩20" in done.output
    with db.session() as s:
        assert s.execute(select(func.count(Answer.id)).where(Answer.status == "accepted")).scalar_one() == 0
        assert balance(s, cheat).total == 0
        assert s.execute(select(WorkerProject.stage)).scalar_one() == "blocked"


def test_unblock_worker_cli_lets_a_blocked_worker_work_again(db: Database, tmp_path: Path, cli_env: None) -> None:
    from admin.cli import app

    project = make_project(db, tmp_path / "imgs", count=4, overlap=1, price=10)
    (worker,) = make_workers(db, 1)
    _work(db, worker, "b", 1)
    runner = CliRunner()
    not_blocked = runner.invoke(app, ["unblock-worker", str(worker), "--project", str(project.id)])
    assert not_blocked.exit_code == 1 and "is not blocked" in not_blocked.output
    assert runner.invoke(app, ["reject-worker", str(worker), "--yes"]).exit_code == 0
    assert isinstance(Driver(db, worker).next(), NoTask)  # blocked: no tasks
    done = runner.invoke(app, ["unblock-worker", str(worker), "--project", project.name])
    assert done.exit_code == 0, done.output
    assert "may work" in done.output
    with db.session() as s:
        assert s.execute(select(WorkerProject.stage)).scalar_one() == "work"
    assert isinstance(Driver(db, worker).next(), TaskCard)  # back to work at once
