"""Group commit (``Database.run_grouped``): taps that queue while the database is busy share
one transaction, and still each is recorded and paid exactly once; a failing call, a failing
COMMIT or a crash in the middle of a group loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from bot.db import Database
from bot.db.migrate import upgrade
from bot.tasks import service
from bot.tasks.service import AnswerOutcome, Submitted, TaskCard
from bot.work import answers
from tests.domain.helpers import make_project, make_workers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gdb(request: pytest.FixtureRequest) -> Iterator[Database]:
    """The same tests on both engines. On PostgreSQL the bot runs several database threads; here
    one, so that holding it (``_grouped``) makes the queued taps one group deterministically."""
    if request.param == "sqlite":
        yield request.getfixturevalue("db")
        return
    database = Database(request.getfixturevalue("pg_url"), pool_size=4, threads=1)
    try:
        yield database
    finally:
        database.dispose()


def _cards(db: Database, worker_ids: list[int]) -> list[TaskCard]:
    cards = [db.call(service.next_task, w) for w in worker_ids]
    assert all(isinstance(c, TaskCard) for c in cards)
    return cards  # type: ignore[return-value]


def _tap(session: Session, worker_id: int, card: TaskCard) -> AnswerOutcome:
    return answers.act_and_next(session, worker_id, card.assignment_id, "label", "0", chat_id=worker_id, message_id=7)


def _counts(db: Database) -> tuple[int, int, int]:
    with db.session() as s:
        answers_ = s.execute(text("SELECT count(*) FROM answer")).scalar_one()
        distinct = s.execute(text("SELECT count(DISTINCT assignment_id) FROM answer")).scalar_one()
        paid = s.execute(text("SELECT count(*) FROM ledgertxn WHERE key LIKE 'answer:%'")).scalar_one()
    return int(answers_), int(distinct), int(paid)


async def _grouped(db: Database, calls: list[tuple[Any, ...]]) -> list[Any]:
    """Hold the DB thread while every call queues, so they form one group deterministically."""
    gate = threading.Event()
    held = asyncio.ensure_future(db.run_blocking(gate.wait, 10))
    await asyncio.sleep(0.05)
    futures = [asyncio.ensure_future(db.run_grouped(*call)) for call in calls]
    await asyncio.sleep(0.05)
    gate.set()
    await held
    return await asyncio.gather(*futures, return_exceptions=True)


async def test_queued_taps_share_one_commit_and_are_each_recorded_once(gdb: Database, tmp_path: Path) -> None:
    db = gdb
    assert db.group_commit  # the default on both engines
    make_project(db, tmp_path / "imgs", count=20, overlap=1, price=10)
    workers = make_workers(db, 12)
    cards = _cards(db, workers)
    groups_before = db.groups
    outcomes = await _grouped(db, [(_tap, w, c) for w, c in zip(workers, cards)])
    assert all(isinstance(o, AnswerOutcome) and isinstance(o.result, Submitted) for o in outcomes)
    assert db.groups == groups_before + 1  # twelve taps, one transaction
    assert _counts(db) == (12, 12, 12)
    # the same taps again (a re-delivered update): nothing new is recorded or paid
    again = await _grouped(db, [(_tap, w, c) for w, c in zip(workers, cards)])
    assert all(isinstance(o, AnswerOutcome) and not isinstance(o.result, Submitted) for o in again)
    assert _counts(db) == (12, 12, 12)


async def test_one_failing_call_fails_alone(gdb: Database, tmp_path: Path) -> None:
    db = gdb
    make_project(db, tmp_path / "imgs", count=20, overlap=1)
    workers = make_workers(db, 6)
    cards = _cards(db, workers)

    def tap_then_fail(session: Session, worker_id: int, card: TaskCard) -> None:
        _tap(session, worker_id, card)  # its writes must go with it
        raise ValueError("boom")

    calls: list[tuple[Any, ...]] = [(_tap, w, c) for w, c in zip(workers, cards)]
    calls[2] = (tap_then_fail, workers[2], cards[2])
    outcomes = await _grouped(db, calls)
    assert isinstance(outcomes[2], ValueError) and str(outcomes[2]) == "boom"
    ok = [o for i, o in enumerate(outcomes) if i != 2]
    assert all(isinstance(o, AnswerOutcome) and isinstance(o.result, Submitted) for o in ok)
    assert _counts(db) == (5, 5, 5)
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM answer WHERE worker_id = :w"), {"w": workers[2]}).scalar_one() == 0


async def test_a_failing_commit_reruns_each_call_alone(gdb: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = gdb
    make_project(db, tmp_path / "imgs", count=20, overlap=1)
    workers = make_workers(db, 5)
    cards = _cards(db, workers)
    failed = []
    real_commit = SessionTransaction.commit

    def commit_once_failing(self: SessionTransaction, _to_root: bool = False) -> None:
        if not failed:
            failed.append(True)
            raise RuntimeError("disk I/O error")
        real_commit(self, _to_root)

    monkeypatch.setattr(SessionTransaction, "commit", commit_once_failing)
    outcomes = await _grouped(db, [(_tap, w, c) for w, c in zip(workers, cards)])
    assert failed == [True]
    assert all(isinstance(o, AnswerOutcome) and isinstance(o.result, Submitted) for o in outcomes)
    assert _counts(db) == (5, 5, 5)


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_crash_inside_a_group_commits_none_of_it(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> None:
    """The process dies while the third call of a group runs: no call was acknowledged, and the
    database holds none of the group (so Telegram's re-delivery records each exactly once)."""
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'crash.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("pg_url")
    db = Database(url)
    make_project(db, tmp_path / "imgs", count=10, overlap=1)
    workers = make_workers(db, 5)
    cards = _cards(db, workers)
    db.dispose()
    script = f"""
import asyncio, os, sys
sys.path.insert(0, {str(ROOT)!r})
from bot.db import Database
from bot.tasks.service import TaskCard
from tests.domain.test_group_commit import _grouped, _tap
cards = {[(c.assignment_id, c.task_id, c.project_id) for c in cards]!r}
workers = {workers!r}
db = Database({url!r}, threads=1)
calls = 0
def tap(session, worker_id, aid):
    global calls
    calls += 1
    if calls == 3:
        os._exit(17)
    from bot.work import answers
    return answers.act_and_next(session, worker_id, aid, "label", "0", chat_id=worker_id, message_id=7)
async def main():
    results = await _grouped(db, [(tap, w, c[0]) for w, c in zip(workers, cards)])
    print("ACKED", results, flush=True)
asyncio.run(main())
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT, env=os.environ)
    assert proc.returncode == 17, proc.stderr[-2000:]
    assert "ACKED" not in proc.stdout
    db = Database(url)
    try:
        assert _counts(db) == (0, 0, 0)
        # re-delivered taps are then recorded exactly once each
        outcomes = [db.call(_tap, w, c) for w, c in zip(workers, cards)]
        assert all(isinstance(o.result, Submitted) for o in outcomes)
        assert _counts(db) == (5, 5, 5)
    finally:
        db.dispose()


async def test_off_runs_each_call_in_its_own_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'off.db'}"
    upgrade(url)
    db = Database(url, group_commit=False)
    try:
        make_project(db, tmp_path / "imgs", count=10, overlap=1)
        workers = make_workers(db, 4)
        cards = _cards(db, workers)
        outcomes = await _grouped(db, [(_tap, w, c) for w, c in zip(workers, cards)])
        assert all(isinstance(o, AnswerOutcome) and isinstance(o.result, Submitted) for o in outcomes)
        assert db.groups == 0 and _counts(db) == (4, 4, 4)
    finally:
        db.dispose()
