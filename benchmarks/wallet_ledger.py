#!/usr/bin/env python
"""Cost of the wallet's operations, and of the /balance screen for a worker with a long history.

    python benchmarks/wallet_ledger.py [--entries 20000] [--ops 200] [--repeat 3] [--pg postgresql://postgres@127.0.0.1/test]

Each run uses a fresh migrated database (a temporary SQLite file, or with ``--pg`` a temporary
database created on that server and dropped afterwards). It preloads one worker with
``--entries`` earnings (bulk insert), then times, one transaction per operation:

* ``earn``: ``credit_earning`` (what every accepted answer costs on top of the answer itself);
* ``balance_screen``: ``ledger.balance`` + ``withdrawals.quote`` + ``activity.recent`` — what
  ``/balance`` reads — for the worker with the long history;
* ``withdraw_cycle``: ``withdrawals.request`` + ``payouts.mark_paid`` (two transactions);
* ``reverse``: ``ledger.reverse_answer`` of an available earning.

Prints a progress line per stage, then ONE JSON line: per operation the median over runs of the
wall milliseconds per op and the CPU milliseconds per op (this process: Python + SQLite; the
PostgreSQL server's CPU is not included), plus ``balance_vs_earn`` (how many earnings one
balance screen costs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bot import workers  # noqa: E402
from bot.clock import utcnow  # noqa: E402
from bot.db import Database  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402
from bot.wallet import activity, ledger, payout_accounts, payouts, withdrawals  # noqa: E402
from bot.wallet.accounts import LABELING_EXPENSE, worker_account  # noqa: E402
from bot.wallet.models import EntryKind, LedgerEntry, LedgerTxn  # noqa: E402


def progress(message: str) -> None:
    print(message, flush=True)


@contextmanager
def fresh_database(pg: str | None) -> Iterator[Database]:
    if pg is None:
        folder = Path(tempfile.mkdtemp(prefix="wallet-bench-"))
        url = f"sqlite:///{folder / 'bench.db'}"
        upgrade(url)
        db = Database(url)
        try:
            yield db
        finally:
            db.dispose()
            shutil.rmtree(folder, ignore_errors=True)
        return
    server = make_url(pg).set(drivername="postgresql+psycopg")
    admin = create_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    name = f"crowdpin_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        db = Database(url, pool_size=4)
        try:
            yield db
        finally:
            db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def preload(db: Database, worker_id: int, entries: int, first_answer: int) -> None:
    """``entries`` earnings of ₩10 over the last 30 days, inserted in bulk (not timed)."""
    now = utcnow()
    batch = 5_000
    with db.session() as s:
        for start in range(0, entries, batch):
            count = min(batch, entries - start)
            when = [now - timedelta(days=30) + timedelta(seconds=(start + i) * 30 * 86_400 / max(entries, 1)) for i in range(count)]
            txn_ids = (
                s.execute(
                    insert(LedgerTxn).returning(LedgerTxn.id),
                    [
                        {
                            "key": f"answer:{first_answer + start + i}",
                            "kind": EntryKind.EARNING.value,
                            "worker_id": worker_id,
                            "created_at": when[i],
                        }
                        for i in range(count)
                    ],
                )
                .scalars()
                .all()
            )
            rows = []
            for txn_id, at in zip(txn_ids, when, strict=True):
                rows.append({"txn_id": txn_id, "account": LABELING_EXPENSE, "amount": -10, "available_at": at, "created_at": at})
                rows.append({"txn_id": txn_id, "account": worker_account(worker_id), "amount": 10, "available_at": at, "created_at": at})
            s.execute(insert(LedgerEntry), rows)


def timed(ops: int, fn: Callable[[int], None]) -> tuple[float, float]:
    """(wall ms per op, CPU ms per op)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(ops):
        fn(i)
    return (time.perf_counter() - wall) * 1000 / ops, (time.process_time() - cpu) * 1000 / ops


def one_run(pg: str | None, entries: int, ops: int, run: int) -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    with fresh_database(pg) as db:
        with db.session() as s:
            heavy, _ = workers.register(s, tg_id=1, name="heavy")
            light, _ = workers.register(s, tg_id=2, name="light")
            heavy_id, light_id = heavy.id, light.id
            payout_accounts.save(s, light_id, bank="KB", number="1234567890")  # type: ignore[arg-type]
        preload(db, heavy_id, entries, first_answer=10_000_000)  # type: ignore[arg-type]
        progress(f"run {run}: preloaded {entries} entries")

        results["earn"] = timed(ops, lambda i: db.call(ledger.credit_earning, worker_id=light_id, answer_id=i + 1, amount=1_000))
        progress(f"run {run}: earn {results['earn'][0]:.2f} ms/op")

        def screen(_: int) -> None:
            def read(session):  # type: ignore[no-untyped-def]
                ledger.balance(session, heavy_id)  # type: ignore[arg-type]
                withdrawals.quote(session, heavy_id, minimum=10_000)  # type: ignore[arg-type]
                activity.recent(session, heavy_id, limit=5)  # type: ignore[arg-type]

            with db.read_session() as session:
                read(session)

        results["balance_screen"] = timed(max(1, ops // 4), screen)
        progress(f"run {run}: balance screen ({entries} entries) {results['balance_screen'][0]:.2f} ms/op")

        def cycle(_: int) -> None:
            got = db.call(withdrawals.request, light_id, 1_000, minimum=1_000)
            assert isinstance(got, withdrawals.Withdrawal), got
            db.call(payouts.mark_paid, [got.id])

        results["withdraw_cycle"] = timed(max(1, ops // 4), cycle)
        progress(f"run {run}: withdraw + mark paid {results['withdraw_cycle'][0]:.2f} ms/op")

        cycles = max(1, ops // 4)
        results["reverse"] = (
            timed(ops - cycles, lambda i: db.call(ledger.reverse_answer, answer_id=cycles + i + 1, worker_id=light_id, amount=1_000))
            if ops > cycles
            else (0.0, 0.0)
        )
        progress(f"run {run}: reverse {results['reverse'][0]:.2f} ms/op")

        with db.read_session() as s:
            problems = payouts.consistency_problems(s)
        if problems:
            raise SystemExit(f"books do not balance after the run: {problems}")
    return results


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000, help="earnings preloaded for the heavy worker")
    parser.add_argument("--ops", type=int, default=200, help="operations timed per stage")
    parser.add_argument("--repeat", type=int, default=3, help="runs; medians are reported")
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL (a temporary database is created there)")
    args = parser.parse_args(argv)
    if args.ops < 2 or args.entries < 0 or args.repeat < 1:
        parser.error("--ops must be at least 2, --entries not negative, --repeat at least 1")
    runs = [one_run(args.pg, args.entries, args.ops, run + 1) for run in range(args.repeat)]
    summary: dict[str, object] = {
        "backend": "postgresql" if args.pg else "sqlite",
        "entries": args.entries,
        "ops": args.ops,
        "repeat": args.repeat,
    }
    for name in runs[0]:
        summary[f"{name}_ms"] = round(statistics.median(r[name][0] for r in runs), 3)
        summary[f"{name}_cpu_ms"] = round(statistics.median(r[name][1] for r in runs), 3)
    earn = summary["earn_ms"]
    summary["balance_vs_earn"] = round(summary["balance_screen_ms"] / earn, 2) if earn else None  # type: ignore[operator]
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
