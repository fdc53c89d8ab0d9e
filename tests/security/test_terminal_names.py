"""Item 1 of issue 18: a worker's name is data on the operator's terminal and in the HTML report.

A worker controls their Telegram first and last name, username, bank name and holder. Before
the fix a last name ``[/]`` crashed ``reject-worker`` (before it rejected anything, so the
cheater kept the pay), ``stats``, ``bonus`` and ``payouts list`` with Rich's MarkupError, and
escape sequences reached the terminal raw.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from sqlalchemy import select
from typer.testing import CliRunner

from admin.terminal import term_safe
from bot.config import get_settings
from bot.db import Database
from bot.tasks.models import Answer, WorkerProject
from bot.tasks.service import Submitted, TaskCard
from bot.wallet import ledger, payout_accounts, withdrawals
from bot.workers.models import Worker
from tests.quality.helpers import Driver, make_project, make_workers

# Rich markup that does not parse, a screen clear, an OSC 8 hyperlink and a bidi override.
HOSTILE = "Mallory [/] [bold]x \x1b[2J\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\ \u202eevil"
SHOWN = "Mallory [/] [bold]x [2J]8;;http://evil.example/\\click]8;;\\ evil"  # what the operator reads


@pytest.fixture
def run(db: Database, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("PSEUDONYM_SECRET", "test-secret")
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line, so the name is not wrapped
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: object, code: int = 0) -> Any:
        from admin.cli import app

        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        for stream in (result.stdout, result.stderr):
            assert "\x1b]8" not in stream and "\x1b[2J" not in stream and "\u202e" not in stream
        return result

    yield invoke
    get_settings.cache_clear()


def _hostile_worker(db: Database, tmp_path: Path) -> tuple[int, int, int]:
    """An honest worker and Mallory, both with paid answers; Mallory has golden credit and a bank account."""
    project = make_project(db, tmp_path / "imgs", count=3, overlap=2, price=15)
    honest, mallory = make_workers(db, 2)
    with db.session() as s:
        worker = s.get(Worker, mallory)
        assert worker is not None
        worker.name, worker.username = HOSTILE, "mal[/]lory"
    for wid in (honest, mallory):
        d = Driver(db, wid)
        for _ in range(3):
            card = d.next()
            assert isinstance(card, TaskCard)
            assert isinstance(d.answer(card, "a"), Submitted)
    with db.session() as s:
        wp = s.execute(select(WorkerProject).where(WorkerProject.worker_id == mallory)).scalars().one()
        wp.golden_correct, wp.golden_total = 19, 20
        ledger.credit_earning(s, worker_id=mallory, answer_id=10_000, amount=20_000, hold_days=0)
        payout_accounts.save(s, mallory, bank="신한", number="110-123-456789", holder="=HOLDER [/]")
        withdrawal = withdrawals.request(s, mallory, 10_000, minimum=10_000)
        assert withdrawal is not None
        withdrawal.bank = "[red]Bank[/] \x1b[31m"  # saved before bank names were validated
    assert project.id is not None
    return project.id, honest, mallory


def test_term_safe_removes_controls_and_escapes_markup() -> None:
    safe = term_safe(HOSTILE)
    assert "\x1b" not in safe and "\u202e" not in safe
    assert Text.from_markup(safe).plain == SHOWN  # Rich prints it back literally
    assert term_safe("tab\tand\nnewline") == "tab and newline"
    assert term_safe(None) == ""


def test_cli_shows_a_hostile_name_as_text_everywhere(run: Callable[..., Any], db: Database, tmp_path: Path) -> None:
    project_id, _, mallory = _hostile_worker(db, tmp_path)

    stats = run("stats", "--top", 5)
    assert SHOWN in stats.stdout and "@mal[/]lory" in stats.stdout

    html_path = tmp_path / "report.html"
    run("stats", "--html", html_path, "--reveal-workers")
    page = html_path.read_text(encoding="utf-8")
    assert html.escape(SHOWN) in page
    assert "\x1b" not in page and "\u202e" not in page

    bonus = run("bonus", "--campaign", "acc", "--amount", 100, "--project", project_id, "--min-accuracy", 0.9, "--dry-run")
    assert SHOWN in bonus.stderr

    payouts = run("payouts", "list")
    assert SHOWN in payouts.stdout and "[red]Bank[/] [31m" in payouts.stdout

    unblock = run("unblock-worker", mallory, "--project", project_id, code=1)
    assert "is not blocked" in unblock.stderr


def test_reject_worker_with_a_hostile_name_rejects_and_takes_the_pay_back(run: Callable[..., Any], db: Database, tmp_path: Path) -> None:
    _, honest, mallory = _hostile_worker(db, tmp_path)
    result = run("reject-worker", mallory, "--yes", "--reason", "[/] cheat")
    assert f"worker {mallory} ({SHOWN})" in result.stderr
    assert "Rejected" in result.stdout
    with db.session() as s:
        statuses = set(s.execute(select(Answer.status).where(Answer.worker_id == mallory)).scalars())
        assert statuses == {"rejected"}
        assert set(s.execute(select(Answer.status).where(Answer.worker_id == honest)).scalars()) == {"accepted"}
    assert f"worker {mallory} ({SHOWN}) may work" in run("unblock-worker", mallory, "--project", "1").stdout
