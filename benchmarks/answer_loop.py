"""Answer-loop benchmark: N simulated workers label as fast as the emulator allows.

Processes: the Bot API emulator, the bot (``crowdpin run`` on SQLite, long polling), and this
driver; with ``--floor`` (the default) also a second emulator and the bare aiogram bot of
``floor_bot.py`` (no database, no domain code: answer the callback, edit the photo). Latency is
"tap to next task shown"; CPU is each bot process's own user+system time over the measured
rounds divided by the answers given in them.

Absolute CPU figures move with the host (the same code has measured 2.0 and 4.6 ms per answer
on two machines), so the figure to judge is ``cpu_vs_floor``: crowdpin's CPU per answer over
the floor's, the median of the ratios of interleaved round pairs (crowdpin, floor, crowdpin,
...), which a host that speeds up or slows down during the run moves alike.

The closed rounds measure capacity; the paced round then runs crowdpin at ``--paced-fraction``
(default half) of the capacity it showed in them, below saturation, where tap-to-next-task
latency is what a worker feels: ``paced.p50_ms``, ``p95_ms``, ``p99_ms``. A fixed rate (1 s
per worker at 200 workers) sat at 97 % of one host's capacity and measured the host.

Last line: one JSON object; ``cpu_cores`` tells what each process used and how busy the machine
was, i.e. whether a round was limited by the bot or by a full machine.
Targets on SQLite: cpu_vs_floor <= 1.3, paced.p95_ms <= 50.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
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
    start_floor,
    stop,
    unlimited_client,
    wait_http,
)
from bot.db import Database
from bot.db.migrate import upgrade
from bot.emulator.client import EmulatorClient
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
        "p99_ms": percentile(lat, 0.99),
        "bot_cpu_ms_per_answer": cpu * 1000 / max(1, len(lat)),
        **{f"cores_{name}": cores[name] for name in ("bot", "emulator", "driver", "machine")},
        "machine_busy": cores["machine_busy"],
    }


def _cores(row: dict[str, float]) -> dict[str, float]:
    """Cores used by each process and the machine's busy fraction: shows whether the round was
    limited by the bot or by a full machine."""
    out = {key.removeprefix("cores_"): round(v, 2) for key, v in row.items() if key.startswith("cores_")}
    return {**out, "machine_busy": round(row["machine_busy"], 3)}


@dataclass
class Contender:
    """One bot under test with its own emulator and its own simulated workers."""

    name: str
    base: str
    pids: tuple[int, int]
    sims: list[RemoteWorker] = field(default_factory=list)
    rounds: list[dict[str, float]] = field(default_factory=list)


async def _setup(client: EmulatorClient, contender: Contender, workers: int) -> None:
    users = [await client.create_user(first_name=f"w{i}", language_code="ko") for i in range(workers)]
    contender.sims = [RemoteWorker(client, u.id) for u in users]
    await asyncio.gather(*(s.start() for s in contender.sims))
    await asyncio.gather(*(s.get_task() for s in contender.sims))
    await asyncio.gather(*(s.answer() for s in contender.sims))  # warm-up: first uploads, caches


async def drive(
    contenders: list[Contender], workers: int, rounds: int, per_round: int, pace: float, paced_fraction: float, paced_check: float
) -> dict[str, dict[str, float]] | None:
    """Closed-loop rounds, interleaved between the contenders (crowdpin, floor, crowdpin, ...)
    so that a host that speeds up or slows down during the run moves both alike; then one
    paced round of each contender at ``paced_fraction`` of crowdpin's measured capacity (the
    floor at the same pace shows what the host and aiogram alone give at that rate)."""
    clients = [unlimited_client(c.base) for c in contenders]
    try:
        for client, contender in zip(clients, contenders, strict=True):
            await _setup(client, contender, workers)
        for r in range(rounds):
            for contender in contenders:
                row = await _round(contender.sims, per_round, contender.pids, pace)
                contender.rounds.append(row)
                print(f"round {r + 1} {contender.name}: " + ", ".join(f"{k}={v:.2f}" for k, v in row.items()), flush=True)
        if not (paced_check or paced_fraction):
            return None
        crowd = contenders[0]
        interval = paced_check or workers / (paced_fraction * median([x["answers_per_s"] for x in crowd.rounds]))
        paced: dict[str, dict[str, float]] = {}
        for contender in contenders:  # the floor at crowdpin's pace: what the host and aiogram give at that rate
            row = await _round(contender.sims, per_round, contender.pids, interval)
            row["pace_s"] = interval
            paced[contender.name] = row
            print(
                f"paced round {contender.name} ({interval:.3f} s between one worker's taps): "
                + ", ".join(f"{k}={v:.2f}" for k, v in row.items()),
                flush=True,
            )
        return paced
    finally:
        for client in clients:
            await client.close()


def _medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: median([row[key] for row in rows]) for key in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="closed-loop rounds per contender (interleaved)")
    parser.add_argument("--per-round", type=int, default=5, help="answers per worker per round")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="seconds between one worker's taps in the measured rounds (0: closed loop, tap again as soon as the next task shows)",
    )
    parser.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the bare aiogram bot (benchmarks/floor_bot.py) in interleaved rounds and report cpu_vs_floor",
    )
    parser.add_argument(
        "--paced-fraction",
        type=float,
        default=0.5,
        help="after the rounds, one round of crowdpin at this fraction of the capacity it showed in them (0: skip)",
    )
    parser.add_argument(
        "--paced-check",
        type=float,
        default=0.0,
        help="fixed seconds between one worker's taps in the paced round instead of --paced-fraction",
    )
    args = parser.parse_args()
    paced_on = bool(args.paced_check or args.paced_fraction)
    answers = args.workers * ((args.rounds + (1 if paced_on else 0)) * args.per_round + 1)
    tasks = math.ceil(answers / args.overlap) + args.workers
    with tempfile.TemporaryDirectory(prefix="crowdpin-bench-") as tmp:
        workdir = Path(tmp)
        print(f"preparing {tasks} tasks for {args.workers} workers ...", flush=True)
        url = prepare(workdir, tasks, args.overlap)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            port = free_port()
            emulator = start_emulator(port, TOKEN, log=workdir / "emulator.log")
            procs.append(emulator)
            base = f"http://127.0.0.1:{port}"
            asyncio.run(wait_http(base + "/_emu/health"))
            bot = start_bot(
                {"BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE": base, "DATABASE_URL": url, "MEDIA_DIR": str(workdir / "media")},
                log=workdir / "bot.log",
            )
            procs.append(bot)
            contenders = [Contender("crowdpin", base, (bot.pid, emulator.pid))]
            if args.floor:
                floor_port = free_port()
                floor_emulator = start_emulator(floor_port, TOKEN, log=workdir / "floor-emulator.log")
                procs.append(floor_emulator)
                floor_base = f"http://127.0.0.1:{floor_port}"
                asyncio.run(wait_http(floor_base + "/_emu/health"))
                floor = start_floor(TOKEN, floor_base, log=workdir / "floor.log")
                procs.append(floor)
                contenders.append(Contender("floor", floor_base, (floor.pid, floor_emulator.pid)))
            paced = asyncio.run(
                drive(contenders, args.workers, args.rounds, args.per_round, args.pace, args.paced_fraction, args.paced_check)
            )
        finally:
            for proc in reversed(procs):
                stop(proc)
            log = workdir / "bot.log"
            if log.exists() and procs[1:] and procs[1].returncode not in (0, -2, 130):
                print("bot log tail:\n" + "\n".join(log.read_text(errors="replace").strip().splitlines()[-5:]))
    stopped = [sim.stopped_by for sim in contenders[0].sims if sim.done]
    if stopped:  # e.g. the accuracy rule blocks the simulated workers, who tap the labels in turn
        print(f"{len(stopped)} of {args.workers} workers got no next task; the first was told: {stopped[0]!r}", flush=True)
    figures = _medians(contenders[0].rounds)
    result: dict[str, object] = {
        "workers": args.workers,
        "pace_s": args.pace,
        "database": "sqlite",
        "answers_per_s": round(figures["answers_per_s"], 1),
        "p50_ms": round(figures["p50_ms"], 1),
        "p95_ms": round(figures["p95_ms"], 1),
        "bot_cpu_ms_per_answer": round(figures["bot_cpu_ms_per_answer"], 3),
        "bot_cpu_ms_per_answer_runs": [round(r["bot_cpu_ms_per_answer"], 3) for r in contenders[0].rounds],
        "answers_per_round": int(figures["answers"]),
        "cpu_cores": _cores(figures),
        "rounds": args.rounds,
        "workers_stopped": len(stopped),
    }
    if args.floor:
        crowd_rows, floor_rows = contenders[0].rounds, contenders[1].rounds
        floor_fig = _medians(floor_rows)
        pair = [c["bot_cpu_ms_per_answer"] / f["bot_cpu_ms_per_answer"] for c, f in zip(crowd_rows, floor_rows, strict=True)]
        result.update(
            floor_cpu_ms_per_answer=round(floor_fig["bot_cpu_ms_per_answer"], 3),
            floor_answers_per_s=round(floor_fig["answers_per_s"], 1),
            floor_cpu_ms_per_answer_runs=[round(r["bot_cpu_ms_per_answer"], 3) for r in floor_rows],
            cpu_vs_floor=round(median(pair), 3),
            cpu_vs_floor_runs=[round(x, 3) for x in pair],
            throughput_vs_floor=round(figures["answers_per_s"] / floor_fig["answers_per_s"], 3),
        )
    if paced is not None:

        def paced_figures(row: dict[str, float]) -> dict[str, object]:
            return {
                "pace_s": round(row["pace_s"], 3),
                "load_fraction": args.paced_fraction if not args.paced_check else None,
                "answers_per_s": round(row["answers_per_s"], 1),
                "p50_ms": round(row["p50_ms"], 1),
                "p95_ms": round(row["p95_ms"], 1),
                "p99_ms": round(row["p99_ms"], 1),
                "bot_cpu_ms_per_answer": round(row["bot_cpu_ms_per_answer"], 3),
                "cpu_cores": _cores(row),
            }

        result["paced"] = paced_figures(paced["crowdpin"])
        if "floor" in paced:  # the bare aiogram bot at the same pace (not a target: context for paced.p95_ms)
            result["paced_floor"] = paced_figures(paced["floor"])
    emit(result)


if __name__ == "__main__":
    _ = ROOT
    main()
