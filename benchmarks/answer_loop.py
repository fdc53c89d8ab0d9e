"""Answer-loop benchmark: N simulated workers label as fast as the emulator allows.

Three processes: the Bot API emulator, the bot (``crowdpin run`` on SQLite, long polling) and
this driver. Latency is "tap to next task shown"; CPU is the bot process's own user+system
time over the measured rounds divided by the answers given in them.

Last line: {"answers_per_s", "p50_ms", "p95_ms", "bot_cpu_ms_per_answer", ..., "paced": {...}}:
medians over ``--rounds`` closed-loop rounds (each worker taps again the moment its next task
shows), then one round in which every worker taps every ``--paced-check`` seconds (default 1,
Telegram's limit of about one message per second in one chat, which is also about as fast as a
person can look at a photo and tap). ``cpu_cores`` tells what each process used and how busy
the machine was, i.e. whether a round was limited by the bot or by a full machine.
Targets on SQLite: bot_cpu_ms_per_answer <= 3, p95_ms <= 100 at 200 workers. In a closed loop
the latency is fixed by Little's law (workers / answers per second: 100 ms at 200 workers needs
2,000 answers/s from the bot, the emulator and this driver together on one machine), so the
paced round, below saturation, is where tap-to-next-task latency means what a worker feels.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from pathlib import Path

from _harness import (
    ROOT,
    CpuCensus,
    RemoteWorker,
    emit,
    free_port,
    median,
    percentile,
    start_bot,
    start_emulator,
    stop,
    unlimited_client,
    wait_http,
)
from bot.db import Database
from bot.db.migrate import upgrade
from bot.sample import generate
from bot.tasks import intake, media, projects
from bot.tasks.models import Project

TOKEN = "4242424242:crowdpin-benchmark-token-aaaaaaaaaaaa"


def prepare(workdir: Path, tasks: int, overlap: int, distinct_images: int = 20) -> str:
    url = f"sqlite:///{workdir / 'bench.db'}"
    upgrade(url)
    db = Database(url)
    samples = generate(workdir / "images", count=distinct_images)
    with db.session() as s:
        project: Project = projects.create(
            s, name="bench", labels=["a", "b", "c"], overlap=overlap, price=10, question_ko="?", question_en="?"
        )
        images = [media.store_image(s, media.check_image(x.path), media_dir=None, copy=False)[0] for x in samples]
        for i in range(tasks):
            intake.add_task(s, project, images[i % len(images)], external_id=f"t{i}")
    db.dispose()
    return url


async def _round(sims: list[RemoteWorker], per_round: int, pids: tuple[int, int], pace: float) -> dict[str, float]:
    bot_pid, emulator_pid = pids
    for s in sims:
        s.latencies_ms.clear()
    census = CpuCensus({"bot": [bot_pid], "emulator": [emulator_pid]})
    census.start()

    async def run(sim: RemoteWorker, offset: float) -> None:
        if pace:
            await asyncio.sleep(offset)  # spread the workers' taps over the pace interval
        for _ in range(per_round):
            if sim.done:
                return
            started = time.perf_counter()
            await sim.answer()
            if pace:
                await asyncio.sleep(max(0.0, pace - (time.perf_counter() - started)))

    await asyncio.gather(*(run(s, pace * i / len(sims)) for i, s in enumerate(sims)))
    cores = census.stop()
    wall, cpu = census.wall, census.seconds["bot"]
    lat = [x for s in sims for x in s.latencies_ms]
    return {
        "answers": len(lat),
        "answers_per_s": len(lat) / wall,
        "p50_ms": percentile(lat, 0.5),
        "p95_ms": percentile(lat, 0.95),
        "bot_cpu_ms_per_answer": cpu * 1000 / max(1, len(lat)),
        **{f"cores_{name}": cores[name] for name in ("bot", "emulator", "driver", "machine")},
        "machine_busy": cores["machine_busy"],
    }


def _cores(row: dict[str, float]) -> dict[str, float]:
    """Cores used by each process and the machine's busy fraction: shows whether the round was
    limited by the bot or by a full machine."""
    out = {key.removeprefix("cores_"): round(v, 2) for key, v in row.items() if key.startswith("cores_")}
    return {**out, "machine_busy": round(row["machine_busy"], 3)}


async def drive(
    base: str, workers: int, rounds: int, per_round: int, pids: tuple[int, int], pace: float = 0.0, paced_check: float = 0.0
) -> tuple[dict[str, float], dict[str, float] | None]:
    """Closed-loop rounds at ``pace`` (median of them), then one round at ``paced_check``."""
    async with unlimited_client(base) as client:
        users = [await client.create_user(first_name=f"w{i}", language_code="ko") for i in range(workers)]
        sims = [RemoteWorker(client, u.id) for u in users]
        await asyncio.gather(*(s.start() for s in sims))
        await asyncio.gather(*(s.get_task() for s in sims))
        await asyncio.gather(*(s.answer() for s in sims))  # warm-up: first uploads, caches
        results = []
        for r in range(rounds):
            results.append(await _round(sims, per_round, pids, pace))
            print(f"round {r + 1}: " + ", ".join(f"{k}={v:.2f}" for k, v in results[-1].items()), flush=True)
        paced = None
        if paced_check:
            paced = await _round(sims, per_round, pids, paced_check)
            print(
                f"paced round ({paced_check:g} s between one worker's taps): " + ", ".join(f"{k}={v:.2f}" for k, v in paced.items()),
                flush=True,
            )
    return {key: median([row[key] for row in results]) for key in results[0]}, paced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=5, help="answers per worker per round")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="seconds between one worker's taps (0: tap again as soon as the next task shows; "
        "1.0: Telegram's limit of about one message per second per chat)",
    )
    parser.add_argument(
        "--paced-check",
        type=float,
        default=1.0,
        help="after the rounds, one more round at this pace (s between one worker's taps; 0: skip). "
        "In the closed loop latency is workers / throughput (Little's law); this round measures "
        "tap-to-next-task at Telegram's own limit of about one message per second per chat "
        "(1 s: 200 taps/s from 200 workers)",
    )
    args = parser.parse_args()
    answers = args.workers * ((args.rounds + (1 if args.paced_check else 0)) * args.per_round + 1)
    tasks = math.ceil(answers / args.overlap) + args.workers
    with tempfile.TemporaryDirectory(prefix="crowdpin-bench-") as tmp:
        workdir = Path(tmp)
        print(f"preparing {tasks} tasks for {args.workers} workers ...", flush=True)
        url = prepare(workdir, tasks, args.overlap)
        port = free_port()
        emulator = start_emulator(port, TOKEN, log=workdir / "emulator.log")
        bot = None
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(wait_http(base + "/_emu/health"))
            bot = start_bot(
                {"BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": base, "DATABASE_URL": url, "MEDIA_DIR": str(workdir / "media")},
                log=workdir / "bot.log",
            )
            figures, paced = asyncio.run(
                drive(base, args.workers, args.rounds, args.per_round, (bot.pid, emulator.pid), args.pace, args.paced_check)
            )
        finally:
            if bot is not None:
                stop(bot)
                tail = (workdir / "bot.log").read_text(errors="replace").strip().splitlines()[-5:]
                if bot.returncode not in (0, -2, 130) and tail:
                    print("bot log tail:\n" + "\n".join(tail))
            stop(emulator)
    emit(
        {
            "workers": args.workers,
            "pace_s": args.pace,
            "database": "sqlite",
            "answers_per_s": round(figures["answers_per_s"], 1),
            "p50_ms": round(figures["p50_ms"], 1),
            "p95_ms": round(figures["p95_ms"], 1),
            "bot_cpu_ms_per_answer": round(figures["bot_cpu_ms_per_answer"], 3),
            "answers_per_round": int(figures["answers"]),
            "cpu_cores": _cores(figures),
            "rounds": args.rounds,
            **(
                {
                    "paced": {
                        "pace_s": args.paced_check,
                        "answers_per_s": round(paced["answers_per_s"], 1),
                        "p50_ms": round(paced["p50_ms"], 1),
                        "p95_ms": round(paced["p95_ms"], 1),
                        "bot_cpu_ms_per_answer": round(paced["bot_cpu_ms_per_answer"], 3),
                        "cpu_cores": _cores(paced),
                    }
                }
                if paced is not None
                else {}
            ),
        }
    )


if __name__ == "__main__":
    _ = ROOT
    main()
