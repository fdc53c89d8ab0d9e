"""Scale-out benchmark: the emulator delivers updates by webhook to bot replicas.

Runs, each with ``--workers`` simulated workers (default 1,000) answering as fast as they can:
  sqlite_1    one replica, SQLite
  floor       the bare aiogram bot of floor_bot.py behind aiogram's own webhook handler (no
              database, no domain code): the floor that ``cpu_vs_floor`` divides by
  postgres_1  one replica, PostgreSQL + Redis
  postgres_2  two replicas sharing one port (SO_REUSEPORT), PostgreSQL + Redis
  postgres_1_capped, postgres_2_capped
              the same with every replica capped at ``--replica-cpu`` cores (a cgroup quota):
              on a 2-core machine the uncapped runs fill the machine with one replica (the
              emulator, this driver and PostgreSQL need the rest), so these show what a second
              replica adds while the machine still has idle CPU, as replicas on machines of
              their own would

Per run: answers_per_s, p95_ms (tap -> next task shown), bot_cpu_ms_per_answer (CPU of all
replicas / answers), double_assignments (task slots handed out beyond overlap, or a task given
to the same worker twice) and lost_answers (taps the workers saw accepted that the database
does not hold), and cpu_cores: the cores each part used during the run (bots, emulator, this
driver, postgres, redis, the whole machine) and machine_busy (the busy fraction of all cores),
which shows where the machine saturates.

The whole set of runs is repeated ``--repeat`` times, interleaved, because this shared host's
speed drifts by a third over minutes: every figure is the median over the repetitions, with
the single values beside it (``*_runs``), and ``cpu_vs_sqlite`` is the median of each
PostgreSQL run's CPU per answer over the SQLite run of the same repetition. The last line is
one JSON object keyed by run (plus ``repeat``). With the ``floor`` run in the set, every other
run also gets ``cpu_vs_floor``: its CPU per answer over the floor's in the same repetition
(median over repetitions, single values in ``cpu_vs_floor_runs``), the figure that does not
move with the host. Target: <= 1.5 for a PostgreSQL + Redis replica.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from _harness import (
    CpuCap,
    CpuCensus,
    RemoteWorker,
    emit,
    free_port,
    median,
    percentile,
    processes_named,
    start_bot,
    start_emulator,
    start_floor,
    stop,
    unlimited_client,
    wait_http,
    wait_listening,
)
from bot.db import Database
from bot.db.migrate import upgrade
from bot.sample import generate
from bot.tasks import intake, media, projects

TOKEN = "5151515151:crowdpin-scale-benchmark-token-aaaaaaa"
PG_ADMIN = os.environ.get("CROWDPIN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("CROWDPIN_BENCH_REDIS", "redis://127.0.0.1:6379/14")
OVERLAP = 3


def make_pg_database() -> tuple[str, str]:
    name = f"crowdpin_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", name


def drop_pg_database(name: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def prepare(url: str, workdir: Path, tasks: int) -> None:
    upgrade(url)
    db = Database(url)
    samples = generate(workdir / "images", count=20)
    with db.session() as s:
        project = projects.create(s, name="scale", labels=["a", "b", "c"], overlap=OVERLAP, price=10, question_ko="?", question_en="?")
        images = [media.store_image(s, media.check_image(x.path), media_dir=None, copy=False)[0] for x in samples]
        for i in range(tasks):
            intake.add_task(s, project, images[i % len(images)], external_id=f"t{i}")
    db.dispose()


def audit(url: str) -> dict[str, int]:
    engine = create_engine(url.replace("sqlite:///", "sqlite:///") if url.startswith("sqlite") else url)
    with engine.connect() as conn:
        over = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT task_id FROM assignment WHERE status IN ('leased','answered') "
                "GROUP BY task_id HAVING count(*) > :o) x"
            ),
            {"o": OVERLAP},
        ).scalar_one()
        twice = conn.execute(
            text("SELECT count(*) FROM (SELECT task_id, worker_id FROM assignment GROUP BY task_id, worker_id HAVING count(*) > 1) x")
        ).scalar_one()
        answers = conn.execute(text("SELECT count(*) FROM answer")).scalar_one()
    engine.dispose()
    return {"double_assignments": int(over) + int(twice), "answers_in_db": int(answers)}


async def drive(base: str, workers: int, per_worker: int, pids: list[int], emulator_pid: int) -> dict[str, Any]:
    async with unlimited_client(base) as client:
        users = await asyncio.gather(*(client.create_user(first_name=f"w{i}", language_code="ko") for i in range(workers)))
        sims = [RemoteWorker(client, u.id) for u in users]
        sem = asyncio.Semaphore(200)

        async def setup(sim: RemoteWorker) -> None:
            async with sem:
                await sim.start()
                await sim.get_task()
                if not sim.done:
                    await sim.answer()  # warm-up answer: first uploads, caches, connections

        await asyncio.gather(*(setup(s) for s in sims))
        for s in sims:
            s.latencies_ms.clear()
        census = CpuCensus(
            {
                "bots": pids,
                **({f"replica{i}": [pid] for i, pid in enumerate(pids)} if len(pids) > 1 else {}),
                "emulator": [emulator_pid],
                "postgres": processes_named("postgres"),
                "redis": processes_named("redis-server"),
            }
        )
        census.start()

        async def run(sim: RemoteWorker) -> None:
            for _ in range(per_worker):
                if sim.done:
                    return
                await sim.answer()

        await asyncio.gather(*(run(s) for s in sims))
        cores = census.stop()
        wall, cpu = census.wall, census.seconds["bots"]
        lat = [x for s in sims for x in s.latencies_ms]
        no_task = [s.message.text for s in sims if s.answers == 0]
        if no_task:
            print(f"{len(no_task)} workers got no task; first reply: {no_task[0]!r}", flush=True)
        return {
            "answers": len(lat),
            "answers_seen_total": sum(s.answers for s in sims),
            "answers_per_s": round(len(lat) / wall, 1),
            "p95_ms": round(percentile(lat, 0.95), 1),
            "p50_ms": round(percentile(lat, 0.5), 1),
            "bot_cpu_ms_per_answer": round(cpu * 1000 / max(1, len(lat)), 3),
            "cpu_cores": cores,
        }


async def wait_webhook_set(base: str, timeout: float = 30) -> None:
    """Until the floor bot has registered its webhook with the emulator (getWebhookInfo)."""
    import time

    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{base}/bot{TOKEN}/getWebhookInfo") as resp:
                if (await resp.json())["result"].get("url"):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("the floor bot did not set its webhook")
            await asyncio.sleep(0.1)


def one_run(name: str, replicas: int, database: str, workers: int, per_worker: int, cap: float | None = None) -> dict[str, Any]:
    tasks = math.ceil(workers * (per_worker + 1) / OVERLAP) + workers
    with tempfile.TemporaryDirectory(prefix=f"crowdpin-scale-{name}-") as tmp:
        workdir = Path(tmp)
        pg_name = None
        if database == "floor":
            url = ""
            env_redis = {}
        elif database == "sqlite":
            url = f"sqlite:///{workdir / 'scale.db'}"
            env_redis: dict[str, str] = {}
        else:
            url, pg_name = make_pg_database()
            import redis

            redis.Redis.from_url(REDIS).flushdb()
            env_redis = {"REDIS_URL": REDIS}
        if url:
            print(f"[{name}] preparing {tasks} tasks ...", flush=True)
            prepare(url, workdir, tasks)
        emu_port, hook_port = free_port(), free_port()
        base = f"http://127.0.0.1:{emu_port}"
        emulator = start_emulator(emu_port, TOKEN, log=workdir / "emulator.log")
        bots = []
        caps: list[CpuCap] = []
        try:
            asyncio.run(wait_http(base + "/_emu/health"))
            env = {
                "BOT_TOKEN": TOKEN,
                "TELEGRAM_API_BASE": base,
                "DATABASE_URL": url,
                "MEDIA_DIR": str(workdir / "media"),
                "WEBHOOK_URL": f"http://127.0.0.1:{hook_port}",
                "WEBHOOK_HOST": "127.0.0.1",
                "WEBHOOK_PORT": str(hook_port),
                **env_redis,
            }
            for r in range(replicas):
                if database == "floor":
                    bots.append(start_floor(TOKEN, base, webhook_port=hook_port, secret="floor", log=workdir / f"bot{r}.log"))
                else:
                    bots.append(start_bot(env, args=["--webhook"], log=workdir / f"bot{r}.log"))
                if cap is not None:
                    caps.append(CpuCap(f"crowdpin-bench-{name}-{r}-{os.getpid()}", cap))
                    caps[-1].add(bots[-1].pid)
                asyncio.run(wait_listening(bots[-1].pid, hook_port))
                if database != "floor":
                    asyncio.run(wait_http(f"http://127.0.0.1:{hook_port}/healthz"))
                else:
                    asyncio.run(wait_webhook_set(base))
            print(f"[{name}] {replicas} replica(s) up; {workers} workers answering ...", flush=True)
            figures = asyncio.run(drive(base, workers, per_worker, [b.pid for b in bots], emulator.pid))
        finally:
            for b in bots:
                stop(b)
            for c in caps:
                c.remove()
            stop(emulator)
            keep = Path(tempfile.gettempdir()) / f"crowdpin-scale-logs-{name}"
            keep.mkdir(exist_ok=True)
            for log_file in workdir.glob("*.log"):
                (keep / log_file.name).write_bytes(log_file.read_bytes())
        checks = audit(url) if url else {"double_assignments": 0, "answers_in_db": figures["answers_seen_total"]}
        if pg_name:
            drop_pg_database(pg_name)
    seen = figures.pop("answers_seen_total")
    figures["double_assignments"] = checks["double_assignments"]
    figures["lost_answers"] = max(0, seen - checks["answers_in_db"])
    print(f"[{name}] {figures}", flush=True)
    return figures


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's figures over its repetitions: medians of the rates, CPU and cores; the worst
    audit (any double assignment or lost answer in any repetition shows)."""
    out: dict[str, Any] = {
        key: round(median([r[key] for r in runs]), 3) for key in ("answers_per_s", "p95_ms", "p50_ms", "bot_cpu_ms_per_answer")
    }
    out["answers"] = sum(r["answers"] for r in runs)
    out["double_assignments"] = max(r["double_assignments"] for r in runs)
    out["lost_answers"] = max(r["lost_answers"] for r in runs)
    out["cpu_cores"] = {k: round(median([r["cpu_cores"][k] for r in runs]), 3) for k in runs[0]["cpu_cores"]}
    out["bot_cpu_ms_per_answer_runs"] = [r["bot_cpu_ms_per_answer"] for r in runs]
    out["answers_per_s_runs"] = [r["answers_per_s"] for r in runs]
    return out


def ratios(result: dict[str, Any], reps: list[dict[str, dict[str, Any]]]) -> None:
    """PostgreSQL CPU per answer over SQLite's, per repetition (runs minutes apart on a shared
    host drift with it; within one repetition they are back to back), and their median."""
    for name in result:
        if name in ("sqlite_1", "floor") or "not_run" in result[name] or "sqlite_1" not in result:
            continue
        per_rep = [rep[name]["bot_cpu_ms_per_answer"] / rep["sqlite_1"]["bot_cpu_ms_per_answer"] for rep in reps]
        result[name]["cpu_vs_sqlite_runs"] = [round(x, 2) for x in per_rep]
        result[name]["cpu_vs_sqlite"] = round(median(per_rep), 2)
    if "floor" not in result or "not_run" in result["floor"]:
        return
    for name in result:
        if name == "floor" or "not_run" in result[name]:
            continue
        per_rep = [rep[name]["bot_cpu_ms_per_answer"] / rep["floor"]["bot_cpu_ms_per_answer"] for rep in reps]
        result[name]["cpu_vs_floor_runs"] = [round(x, 2) for x in per_rep]
        result[name]["cpu_vs_floor"] = round(median(per_rep), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--per-worker", type=int, default=3, help="measured answers per worker")
    parser.add_argument("--runs", default="floor,sqlite_1,postgres_1,postgres_2,postgres_1_capped,postgres_2_capped")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="repetitions of the whole set of runs, interleaved (sqlite_1, postgres_1, ..., sqlite_1, ...); "
        "figures are medians, and each PostgreSQL run is compared with the SQLite run of its own repetition",
    )
    parser.add_argument(
        "--replica-cpu",
        type=float,
        default=0.35,
        help="cores each replica may use in the *_capped runs (a cgroup CPU quota): replicas as on "
        "small machines of their own, so that they, not this 2-core machine, are the bottleneck",
    )
    args = parser.parse_args()
    plan = {
        "floor": (1, "floor", None),
        "sqlite_1": (1, "sqlite", None),
        "postgres_1": (1, "postgres", None),
        "postgres_2": (2, "postgres", None),
        "postgres_1_capped": (1, "postgres", args.replica_cpu),
        "postgres_2_capped": (2, "postgres", args.replica_cpu),
    }
    names = args.runs.split(",")
    refused = {name: why for name in names if plan[name][2] is not None and (why := CpuCap.available()) is not None}
    for name, why in refused.items():
        print(f"[{name}] not run: {why}", flush=True)
    reps: list[dict[str, dict[str, Any]]] = []
    for rep in range(args.repeat):
        figures: dict[str, dict[str, Any]] = {}
        for name in names:
            if name in refused:
                continue
            replicas, database, cap = plan[name]
            print(f"[{name}] repetition {rep + 1} of {args.repeat}", flush=True)
            figures[name] = one_run(name, replicas, database, args.workers, args.per_worker, cap)
        reps.append(figures)
    result: dict[str, Any] = {}
    for name in names:
        if name in refused:
            result[name] = {"not_run": refused[name]}
            continue
        result[name] = combine([rep[name] for rep in reps])
        if plan[name][2] is not None:
            result[name]["replica_cpu_cap"] = plan[name][2]
    ratios(result, reps)
    result["repeat"] = args.repeat
    emit(result)


if __name__ == "__main__":
    main()
