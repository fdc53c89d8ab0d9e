"""Several processes ("replicas") claim and answer at once on PostgreSQL and on SQLite:
no task goes to more workers than its overlap, nobody gets a task twice, no answer is lost."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import workers
from bot.clock import utcnow
from bot.db import Database
from bot.tasks import quality, service
from bot.tasks.models import Answer, Assignment, AssignmentStatus, Project, Task
from bot.tasks.service import Submitted, TaskCard
from bot.wallet.accounts import LABELING_EXPENSE
from bot.wallet.ledger import account_balance, ledger_total
from bot.work import answers
from tests.domain.helpers import make_project, make_workers

REPLICAS = 4
WORKERS_PER_REPLICA = 6


def _replica(url: str, replica: int, out: mp.Queue[tuple[int, int]]) -> None:
    db = Database(url, pool_size=WORKERS_PER_REPLICA)
    answered = 0
    try:
        ids = []
        with db.session() as s:
            for i in range(WORKERS_PER_REPLICA):
                worker, _ = workers.register(s, tg_id=10_000 * (replica + 1) + i, name=f"r{replica}w{i}")
                ids.append(worker.id)
        active = list(ids)
        # interleave the workers of this replica so their transactions overlap with other replicas'
        while active:
            for worker_id in list(active):
                card = db.call(service.next_task, worker_id)
                if not isinstance(card, TaskCard):
                    active.remove(worker_id)
                    continue
                result = db.call(answers.submit_answer, worker_id, card.assignment_id, "a")
                assert isinstance(result, Submitted), result
                answered += 1
    finally:
        db.dispose()
        out.put((replica, answered))


def _replicas(url: str, target: Callable[..., None]) -> list[tuple[int, ...]]:
    """Run ``target(url, replica, queue)`` in REPLICAS processes at once; what each put."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue[tuple[int, ...]] = ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, r, queue)) for r in range(REPLICAS)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return results


def _run_replicas(url: str) -> int:
    return sum(n for _, n in _replicas(url, _replica))


def _grouped_replica(url: str, replica: int, out: mp.Queue[tuple[int, int, int]]) -> None:
    """A replica as the bot runs one: its workers tap at once on the event loop, and the taps
    that queue while the database thread is busy share a transaction (group commit)."""
    import asyncio

    db = Database(url, pool_size=WORKERS_PER_REPLICA)
    assert db.group_commit
    answered = 0

    async def worker_loop(worker_id: int) -> None:
        nonlocal answered
        card = await db.run(service.next_task, worker_id)
        while isinstance(card, TaskCard):
            outcome = await db.run_grouped(
                answers.act_and_next, worker_id, card.assignment_id, "label", "0", chat_id=worker_id, message_id=1
            )
            assert isinstance(outcome.result, Submitted), outcome.result
            answered += 1
            card = outcome.next if isinstance(outcome.next, TaskCard) else await db.run(service.next_task, worker_id)

    try:
        with db.session() as s:
            ids = [workers.register(s, tg_id=20_000 * (replica + 1) + i, name=f"g{replica}w{i}")[0].id for i in range(WORKERS_PER_REPLICA)]

        async def main() -> None:
            await asyncio.gather(*(worker_loop(w) for w in ids if w is not None))

        asyncio.run(main())
    finally:
        groups = db.groups
        db.dispose()
        out.put((replica, answered, groups))


def _check(db: Database, tasks: int, overlap: int, answered: int, price: int) -> None:
    with db.session() as s:
        per_task = dict(s.execute(select(Answer.task_id, func.count()).group_by(Answer.task_id)).all())
        assert len(per_task) == tasks
        assert set(per_task.values()) == {overlap}, "a task got more (or fewer) answers than its overlap"
        pairs = s.execute(select(Assignment.task_id, Assignment.worker_id)).all()
        assert len(pairs) == len(set(pairs)), "a worker got the same task twice"
        assert s.execute(select(func.count(Answer.id))).scalar_one() == answered == tasks * overlap
        assert all(t.taken == overlap for t in s.execute(select(Task)).scalars())
        assert account_balance(s, LABELING_EXPENSE) == -answered * price
        assert ledger_total(s) == 0


@pytest.mark.postgres
def test_replicas_on_postgres(pg_db: Database, pg_url: str, tmp_path: Path) -> None:
    make_project(pg_db, tmp_path / "imgs", count=30, overlap=3, price=10)
    answered = _run_replicas(pg_url)
    _check(pg_db, 30, 3, answered, 10)


@pytest.mark.postgres
def test_replicas_with_group_commit_on_postgres(pg_db: Database, pg_url: str, tmp_path: Path) -> None:
    make_project(pg_db, tmp_path / "imgs", count=40, overlap=3, price=10)
    results = _replicas(pg_url, _grouped_replica)
    assert sum(groups for *_, groups in results) > 0, "no taps shared a transaction: the test did not test group commit"
    _check(pg_db, 40, 3, sum(n for _, n, _ in results), 10)


def test_replicas_on_sqlite(db: Database, sqlite_url: str, tmp_path: Path) -> None:
    make_project(db, tmp_path / "imgs", count=30, overlap=3, price=10)
    answered = _run_replicas(sqlite_url)
    _check(db, 30, 3, answered, 10)


@pytest.mark.postgres
def test_deadlock_victim_is_retried(pg_db: Database) -> None:
    """A transaction PostgreSQL aborts as a deadlock victim runs again; other errors do not."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    calls = {"n": 0}

    def flaky(session) -> int:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            session.execute(text("DO $$ BEGIN RAISE EXCEPTION 'victim' USING ERRCODE = '40P01'; END $$"))
        return int(session.execute(text("SELECT 41 + 1")).scalar_one())

    assert pg_db.call(flaky) == 42 and calls["n"] == 2

    def broken(session) -> None:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        session.execute(text("SELECT * FROM no_such_table"))

    calls["n"] = 0
    with pytest.raises(DBAPIError):
        pg_db.call(broken)
    assert calls["n"] == 1


def test_a_connection_the_server_dropped_is_replaced(pg_db: Database, pg_url: str) -> None:
    """No ping before each transaction: a pooled connection killed by the server (a restart, an
    idle timeout) fails on first use and the transaction runs again on a fresh connection."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    first = pg_db.call(lambda s: s.execute(text("SELECT pg_backend_pid()")).scalar_one())
    admin = create_engine(make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar_one() is True
    admin.dispose()
    again = pg_db.call(lambda s: s.execute(text("SELECT pg_backend_pid()")).scalar_one())
    assert again != first


@pytest.mark.postgres
def test_a_claim_that_meets_the_workers_other_new_lease_gives_its_slot_back(pg_db: Database, tmp_path: Path) -> None:
    """Two claims of one worker at once (two taps, two replicas) can pick the same task: the
    pick's "not seen by this worker" reads its snapshot. The lease INSERT of the later one then
    meets the earlier lease; on PostgreSQL that claim, the lease and the card are one statement,
    so the statement must hand the slot back and the claim pick again, with the card of the task
    it did get. The window (the other claim commits between this statement's snapshot and its
    row lock) is narrow, so the test opens it on purpose: another transaction holds an
    uncommitted lease of the first task for this worker, inserted without the foreign-key lock
    on the task row (``session_replication_role = replica``; that lock would make the pick skip
    the row), until the claim waits on the lease's unique key; then it commits."""
    from sqlalchemy import insert, text

    make_project(pg_db, tmp_path / "imgs", count=3, overlap=1)
    (w,) = make_workers(pg_db, 1)
    with pg_db.session() as s:
        project = s.execute(select(Project)).scalar_one()
        first, second, _ = s.execute(select(Task.id).order_by(Task.id)).scalars().all()
        quality.standing(s, w, project)  # the worker's row exists: the claim writes nothing else first
        pid = project.id
    now = utcnow()
    other = pg_db.engine.connect()
    held = other.begin()
    other.execute(text("SET LOCAL session_replication_role = replica"))
    row = {"task_id": first, "worker_id": w, "project_id": pid, "leased_at": now, "expires_at": now + timedelta(minutes=10)}
    other.execute(insert(Assignment).values(status=AssignmentStatus.LEASED.value, **row))
    got: dict[str, object] = {}

    def claim() -> None:
        try:
            got["card"] = pg_db.call(service.next_task, w, check_current=False)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below, not lost in the thread
            got["error"] = exc

    claimer = threading.Thread(target=claim)
    claimer.start()
    waits = 0
    with pg_db.engine.connect() as watch:
        for _ in range(500):  # until the claim's INSERT waits for the uncommitted lease
            waits = watch.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
            ).scalar_one()
            if waits:
                break
            # PostgreSQL reads pg_stat_activity once per transaction: end it, or every later
            # poll sees the first one's snapshot (taken before the claim waited, on a slow start)
            watch.rollback()
            time.sleep(0.02)
    held.commit()
    other.close()
    claimer.join(20)
    assert waits == 1, f"the claim never met the other lease: the test did not test the race (the claim gave {got})"
    card = got["card"]
    assert isinstance(card, TaskCard) and card.task_id == second
    with pg_db.session() as s:
        taken = dict(s.execute(select(Task.id, Task.taken)).all())
        assert taken[first] == 0 and taken[second] == 1  # the raced slot went back
        leases = s.execute(select(Assignment.task_id).where(Assignment.worker_id == w).order_by(Assignment.id)).scalars().all()
        assert leases == [first, second]
        lease = s.get(Assignment, card.assignment_id)
        assert lease is not None and lease.task_id == second
        assert service.card_for(s, lease, "ko", now) == card  # the card the claim read is the card a SELECT reads
