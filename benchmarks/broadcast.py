#!/usr/bin/env python
"""Broadcast delivery against the Bot API emulator with Telegram's flood control.

    python benchmarks/broadcast.py                 # 3,000 recipients, 2 % blocked, default pace
    python benchmarks/broadcast.py --recipients 60 # quick look

Setup: the emulator runs as its own process (``python -m bot.emulator --flood-control``,
30 messages/s to different chats, 1/s per chat); N users have opened the bot and 2 % of
them have blocked it; the same N are workers in a fresh SQLite database.

Run 1 (uninterrupted): the sender is ``crowdpin admin broadcast PROJECT --text ...`` in a
separate process. Run 2: same, but the sender is SIGKILLed half-way, then restarted with
``crowdpin admin broadcast resume ID``. The restart takes the broadcast over at once (the
holder was a dead process on this host) and resends the one row left ``sending``.

Figures per run, from the emulator (what users received) and the database:
  rate_per_s  Bot API send calls answered (delivered or 403) per second while sending,
              from the rows' timestamps (the kill's downtime excluded)
  http_429    429 answers the emulator gave
  duplicates  messages a chat received more than once
  lost        recipients that neither received the message nor are marked blocked/failed
plus cpu_ms_per_message of the sender process(es). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, update  # noqa: E402

from bot import workers  # noqa: E402
from bot.app import make_database  # noqa: E402
from bot.broadcast.models import Broadcast, BroadcastRecipient, RecipientStatus  # noqa: E402
from bot.config import DatabaseSettings, Settings  # noqa: E402
from bot.db import Database  # noqa: E402
from bot.emulator.client import EmulatorClient  # noqa: E402
from bot.emulator.runner import DEFAULT_TEST_TOKEN  # noqa: E402
from bot.tasks import projects  # noqa: E402
from bot.workers.models import Worker, WorkerStatus  # noqa: E402

FIRST_USER = 700_000


def log(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_emulator(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.emulator", "--port", str(port), "--flood-control"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_healthy(emu: EmulatorClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await emu.health()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def setup_users(emu: EmulatorClient, n: int, blocked_every: int) -> list[int]:
    """N users who opened the bot; every ``blocked_every``-th then blocked it."""
    sem = asyncio.Semaphore(32)
    ids = [FIRST_USER + i for i in range(n)]

    async def one(uid: int) -> None:
        async with sem:
            await emu.create_user(user_id=uid, first_name=f"w{uid}", language_code="ko")
            await emu.send_text(uid, "/start")

    await asyncio.gather(*(one(uid) for uid in ids))
    blocked = ids[blocked_every - 1 :: blocked_every] if blocked_every else []
    await asyncio.gather(*(emu.block(uid) for uid in blocked))
    await emu.set_flood_control(True, per_chat_per_s=1.0, global_per_s=30.0)
    return blocked


def setup_db(db: Database, ids: list[int]) -> int:
    with db.session() as s:
        project = projects.create(s, name="Broadcast bench", labels=["yes", "no"])
        for uid in ids:
            workers.register(s, tg_id=uid, name=f"w{uid}")
        return int(project.id)  # type: ignore[arg-type]


def reactivate(db: Database) -> None:
    """Run 1 marked the blocked users unreachable; run 2 must address them again."""
    with db.session() as s:
        s.execute(update(Worker).values(status=WorkerStatus.ACTIVE, status_reason=None))


def sender(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "admin", "broadcast", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def reap(proc: subprocess.Popen[bytes]) -> tuple[int, float, str]:
    """Wait for the process; (exit status, CPU seconds, its stdout)."""
    out = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, out


def finished_count(db: Database, bid: int) -> int:
    with db.read_session() as s:
        return int(
            s.execute(
                select(func.count()).where(
                    BroadcastRecipient.broadcast_id == bid,
                    BroadcastRecipient.status.in_([RecipientStatus.SENT, RecipientStatus.BLOCKED, RecipientStatus.FAILED]),  # type: ignore[attr-defined]
                )
            ).scalar_one()
        )


def latest_broadcast(db: Database) -> int | None:
    with db.read_session() as s:
        return s.execute(select(func.max(Broadcast.id))).scalar_one()


def rows(db: Database, bid: int) -> list[tuple[int, str, datetime]]:
    with db.read_session() as s:
        return [
            (int(c), str(st), at)
            for c, st, at in s.execute(
                select(BroadcastRecipient.chat_id, BroadcastRecipient.status, BroadcastRecipient.updated_at).where(
                    BroadcastRecipient.broadcast_id == bid
                )
            ).all()
        ]


def sustained_rate(stamps: list[datetime], kill_at: datetime | None) -> float:
    """Finished rows per second of sending time; with a kill, the two segments are added."""
    if len(stamps) < 2:
        return 0.0
    stamps = sorted(stamps)
    segments = [stamps] if kill_at is None else [[t for t in stamps if t <= kill_at], [t for t in stamps if t > kill_at]]
    busy = sum((seg[-1] - seg[0]).total_seconds() for seg in segments if len(seg) > 1)
    return (len(stamps) - len([s for s in segments if s])) / busy if busy > 0 else 0.0


async def figures(emu: EmulatorClient, db: Database, bid: int, ids: list[int], kill_at: datetime | None) -> dict[str, Any]:
    stats = await emu.stats()
    per_chat = {int(k): v for k, v in stats["sent_messages"].items()}
    state = {chat: status for chat, status, _ in rows(db, bid)}
    duplicates = sum(max(0, n - 1) for n in per_chat.values())
    lost = sum(1 for uid in ids if per_chat.get(uid, 0) == 0 and state.get(uid) not in (RecipientStatus.BLOCKED, RecipientStatus.FAILED))
    stamps = [at for _, status, at in rows(db, bid) if status in (RecipientStatus.SENT, RecipientStatus.BLOCKED, RecipientStatus.FAILED)]
    return {
        "rate_per_s": round(sustained_rate(stamps, kill_at), 2),
        "http_429": int(stats["http_429"]),
        "duplicates": duplicates,
        "lost": lost,
        "sent": sum(1 for s in state.values() if s == RecipientStatus.SENT),
        "blocked": sum(1 for s in state.values() if s == RecipientStatus.BLOCKED),
        "failed": sum(1 for s in state.values() if s == RecipientStatus.FAILED),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=3000)
    parser.add_argument("--blocked-every", type=int, default=50, help="every Nth user blocked the bot (50 = 2 %%)")
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of recipients done when run 2 is killed")
    parser.add_argument("--rate", type=float, default=None, help="BROADCAST_RATE for the sender (default: the setting, 25/s)")
    parser.add_argument("--workdir", type=Path, default=None)
    opts = parser.parse_args()

    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="crowdpin-bench-broadcast-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / 'bench.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log(f"workdir {workdir}; emulator on {base} (flood control 30/s, 1/s per chat)")
    emu_proc = start_emulator(port)
    db = make_database(Settings(database=DatabaseSettings(DATABASE_URL=db_url)))
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "BOT_TOKEN": DEFAULT_TEST_TOKEN,
        "TELEGRAM_API_BASE": base,
        "LOG_LEVEL": "WARNING",
        "COLUMNS": "120",
    }
    env.pop("REDIS_URL", None)
    if opts.rate is not None:
        env["BROADCAST_RATE"] = str(opts.rate)
    report: dict[str, Any] = {"recipients": opts.recipients}
    try:
        async with EmulatorClient(base) as emu:
            await wait_healthy(emu)
            t0 = time.monotonic()
            blocked = await setup_users(emu, opts.recipients, opts.blocked_every)
            ids = [FIRST_USER + i for i in range(opts.recipients)]
            project_id = setup_db(db, ids)
            log(f"{len(ids)} users ({len(blocked)} blocked the bot) ready in {time.monotonic() - t0:.1f} s")

            # run 1: uninterrupted
            await emu.reset_stats()
            t0 = time.monotonic()
            proc = sender([str(project_id), "--text", "Run 1: new tasks!", "--to", "all"], env)
            code, cpu1, out = reap(proc)
            bid1 = latest_broadcast(db)
            assert bid1 is not None, "the sender created no broadcast"
            log(f"run 1: exit {code} in {time.monotonic() - t0:.1f} s: {out.strip()}")
            run1 = await figures(emu, db, bid1, ids, None)
            run1["cpu_ms_per_message"] = round(1000 * cpu1 / max(1, opts.recipients), 3)
            log(f"run 1: {json.dumps(run1)}")

            # run 2: SIGKILL half-way, then resume
            reactivate(db)
            await emu.reset_stats()
            t0 = time.monotonic()
            proc = sender([str(project_id), "--text", "Run 2: new tasks!", "--to", "all"], env)
            target = int(opts.recipients * opts.kill_at)
            bid2 = None
            while proc.poll() is None:
                bid2 = bid2 if bid2 not in (None, bid1) else latest_broadcast(db)
                if bid2 not in (None, bid1) and finished_count(db, bid2) >= target:  # type: ignore[arg-type]
                    break
                await asyncio.sleep(0.05)
            kill_at = datetime.now().astimezone()
            os.kill(proc.pid, signal.SIGKILL)
            _, cpu2a, _ = reap(proc)
            assert bid2 not in (None, bid1), "run 2 ended before it could be killed"
            done_at_kill = finished_count(db, bid2)  # type: ignore[arg-type]
            with db.read_session() as s:
                in_flight = s.execute(
                    select(func.count()).where(
                        BroadcastRecipient.broadcast_id == bid2, BroadcastRecipient.status == RecipientStatus.SENDING
                    )
                ).scalar_one()
            log(f"run 2: SIGKILL after {time.monotonic() - t0:.1f} s with {done_at_kill} done, {in_flight} row(s) left `sending`")
            proc = sender(["resume", str(bid2)], env)
            code, cpu2b, out = reap(proc)
            log(f"run 2: resumed, exit {code} in {time.monotonic() - t0:.1f} s total: {out.strip()}")
            run2 = await figures(emu, db, bid2, ids, kill_at)  # type: ignore[arg-type]
            run2["cpu_ms_per_message"] = round(1000 * (cpu2a + cpu2b) / max(1, opts.recipients), 3)
            run2["left_sending_at_kill"] = int(in_flight)
            log(f"run 2: {json.dumps(run2)}")
            report.update({k: run1[k] for k in ("rate_per_s", "http_429", "duplicates", "lost")})
            report["after_kill"] = {k: run2[k] for k in ("rate_per_s", "http_429", "duplicates", "lost")}
            report["run"] = run1
            report["run_after_kill"] = run2
    finally:
        emu_proc.send_signal(signal.SIGTERM)
        try:
            emu_proc.wait(10)
        except subprocess.TimeoutExpired:
            emu_proc.kill()
        db.dispose()
    report["targets_met"] = bool(
        report.get("rate_per_s", 0) >= 25
        and report.get("http_429") == 0
        and report.get("duplicates") == 0
        and report.get("lost") == 0
        and report.get("after_kill", {}).get("duplicates", 99) <= 1
        and report.get("after_kill", {}).get("lost", 99) == 0
    )
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
