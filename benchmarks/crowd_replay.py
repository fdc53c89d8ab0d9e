#!/usr/bin/env python
"""Replay a real crowd through the real bot over the emulator: do the quality rules keep honest
workers, and does the batch finish while people come and go?

    python benchmarks/crowd_replay.py --data ../shared/crowd-dev --set rte [--set dog] [--limit 100]

Three processes, as in ``answer_loop.py``: the Bot API emulator, the bot (``crowdpin run`` on
SQLite, long polling) and this driver. Every source worker of the set becomes an emulator user
who asks for a task, answers the tasks it labelled in the source with the label it gave there,
and skips the others (it never saw them) — through the bot's own buttons, so the bot's
assignment, golden mixing, quality rules, leases and aggregation all run for real.

The project uses the quality features at their defaults (posterior accuracy rule, exam
attempts, idle leases, the batches job) with a tenth of the tasks (seeded) made golden tasks and
``golden_share`` 0.1; the overlap is the set's answers per task, so without churn every source
answer has a slot.

Each set is replayed twice: as is, and with **churn** — 30 % of the workers (seeded) leave for
good at a random moment (after a random share of their answers). ``completion_s`` is the time
until every task has its result (done, or stuck with no eligible worker left, which is then
closed with ``admin project finish``'s domain function).

**Time is compressed** so that a replay fits a shared machine: a source worker answers as fast
as the bot serves it, so a batch that took people days takes minutes, and the time settings are
scaled with it: ``lease_seconds`` 60, ``idle_lease_seconds`` 5, ``stuck_after_seconds`` 20,
``STUCK_SWEEP_SECONDS`` 2 (``--time-scale`` multiplies them). ``--limit N`` replays only the first
N tasks of the set (and the answers to them): the full sets need ~10 skips per answer over HTTP.

Figures per set (the last line is one JSON object, one entry per set):
``accuracy`` (exported labels, the export's default method, against the truth, normal tasks),
``ds_all`` (Dawid–Skene, the export's model, on all source answers of the same tasks, same
tasks), ``honest_blocked`` (share of the workers above the crowd's median accuracy who were
stopped: blocked or out of exam attempts), ``answers_lost`` (share of source answers the bot
refused or never took on normal tasks, without churn: a golden task is shown at random, so a
source answer to one may never be asked for), ``completion_s`` and ``completion_s_churn``.
Targets: accuracy >= ds_all - 0.005, honest_blocked <= 0.02, completion_s_churn <= 1.25 x completion_s.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import sqlite3
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _harness import ROOT, emit, free_port, start_bot, start_emulator, stop, unlimited_client, wait_http
from bot.db import Database
from bot.db.migrate import upgrade
from bot.emulator.client import EmulatorClient
from bot.i18n import t
from bot.sample import generate
from bot.tasks import aggregate, intake, media, projects, stuck
from bot.tasks import crowd_models as models
from bot.tasks.models import TaskKind
from bot.tasks.service import Refusal

TOKEN = "4242424242:crowdpin-replay-token-aaaaaaaaaaaaaa"
GOLDEN_SHARE = 0.1
CHURN = 0.3
ARRIVAL_S = 0.2  # between two workers' first /start
WAIT_S = 240.0  # on a loaded 2-core machine the first replies to 100+ workers take a while
REFUSALS = {t(f"refuse.{r.value}", "ko") for r in Refusal}


@dataclass
class Crowd:
    name: str
    tasks: list[str]  # in source order
    answers: dict[str, dict[str, str]]  # worker -> task -> label
    truth: dict[str, str]
    labels: list[str]

    @property
    def n_answers(self) -> int:
        return sum(len(v) for v in self.answers.values())


def load(data: Path, name: str, limit: int | None) -> Crowd:
    with (data / f"{name}_answers.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    with (data / f"{name}_gold.csv").open(newline="") as fh:
        truth = {r["task"]: r["label"] for r in csv.DictReader(fh)}
    tasks = [task for task in dict.fromkeys(r["task"] for r in rows) if task in truth]
    if limit:
        tasks = tasks[:limit]
    keep = set(tasks)
    answers: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        if r["task"] in keep:
            answers[r["worker"]][r["task"]] = r["label"]
    labels = sorted({r["label"] for r in rows} | set(truth.values()), key=lambda v: (len(v), v))
    return Crowd(name, tasks, dict(answers), {k: truth[k] for k in tasks}, labels)


def ds_all(crowd: Crowd, normal: set[str]) -> float:
    """Dawid–Skene as the export runs it (its prior), on every source answer; accuracy on ``normal``."""
    t_index = {task: i for i, task in enumerate(crowd.tasks)}
    w_index = {w: i for i, w in enumerate(crowd.answers)}
    l_index = {label: i for i, label in enumerate(crowd.labels)}
    rows = [(t_index[task], w_index[w], l_index[label]) for w, mine in crowd.answers.items() for task, label in mine.items()]
    a = models.Answers.of([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], len(crowd.labels))
    fit = models.dawid_skene(a, prior=aggregate.DS_PRIOR)
    got = fit.labels
    hits = [crowd.labels[int(got[t_index[task]])] == crowd.truth[task] for task in crowd.tasks if task in normal]
    return sum(hits) / max(1, len(hits))


def prepare(workdir: Path, crowd: Crowd, seed: int, scale: float) -> tuple[str, int, set[str]]:
    url = f"sqlite:///{workdir / 'replay.db'}"
    upgrade(url)
    db = Database(url)
    rng = random.Random(seed)
    golden = set(rng.sample(crowd.tasks, max(1, round(GOLDEN_SHARE * len(crowd.tasks)))))
    per_task: dict[str, int] = defaultdict(int)
    for mine in crowd.answers.values():
        for task in mine:
            per_task[task] += 1
    samples = generate(workdir / "images", count=20)
    with db.session() as s:
        project = projects.create(
            s,
            name=f"replay-{crowd.name}",
            labels=crowd.labels,
            overlap=max(per_task.values()),
            golden_share=GOLDEN_SHARE,
            lease_seconds=max(10, round(60 * scale)),
            idle_lease_seconds=max(1, round(5 * scale)),
            stuck_after_seconds=max(1, round(20 * scale)),
            question_ko="?",
            question_en="?",
        )
        images = [media.store_image(s, media.check_image(x.path), media_dir=None, copy=False)[0] for x in samples]
        for i, task in enumerate(crowd.tasks):
            kind = TaskKind.GOLDEN if task in golden else TaskKind.NORMAL
            intake.add_task(
                s, project, images[i % len(images)], external_id=task, kind=kind, golden=crowd.truth[task] if task in golden else None
            )
        assert project.id is not None
        project_id = project.id
    db.dispose()
    return url, project_id, set(crowd.tasks) - golden


def _assignment(message: Any) -> int | None:
    for row in (message.reply_markup or {}).get("inline_keyboard", []):
        for button in row:
            parts = str(button.get("callback_data", "")).split(":")
            if len(parts) >= 3 and parts[0] == "t":
                return int(parts[2])
    return None


@dataclass
class Replayer:
    """One source worker: answers what it labelled, skips the rest, maybe leaves mid-batch."""

    client: EmulatorClient
    user_id: int
    mine: dict[str, str]
    db_path: Path
    leave_after: int | None = None  # answers before leaving for good (churn)
    answered: int = 0
    skipped: int = 0
    stopped: str | None = None  # why the bot stopped giving tasks (a notice), if it did
    arrived: bool = False  # has asked for a first task
    refused: int = 0  # taps the bot refused (a lapsed lease whose slot was gone...)
    message: Any = None
    version: int = 0
    log: list[str] = field(default_factory=list)

    def _task_of(self, assignment_id: int) -> tuple[str, str]:
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30) as conn:
            row = conn.execute(
                "SELECT task.external_id, task.kind FROM assignment JOIN task ON task.id = assignment.task_id WHERE assignment.id = ?",
                (assignment_id,),
            ).fetchone()
        return str(row[0]), str(row[1])

    def _open_mine(self) -> int:
        """How many of this worker's source tasks are still open and not yet handed to it."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30) as conn:
            rows = conn.execute(
                "SELECT task.external_id FROM task WHERE task.status = 'open' AND task.kind = 'normal' AND task.id NOT IN "
                "(SELECT assignment.task_id FROM assignment JOIN worker ON worker.id = assignment.worker_id WHERE worker.tg_id = ?)",
                (self.user_id,),
            ).fetchall()
        return sum(1 for (ext,) in rows if ext in self.mine)

    async def _wait_change(self, current: int | None, callback: str) -> Any | None:
        """The next screen after a tap; None when the bot refused the tap (an alert, no new screen)."""
        from bot.emulator.state import TranscriptMessage

        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            result = await self.client._call(
                "GET", "/wait", params={"chat_id": self.user_id, "after_version": self.version, "timeout": 2}, timeout=20
            )
            if result["timed_out"]:
                answer = await self.client.callback_answer(callback)
                if answer is not None and answer.get("text") in REFUSALS:
                    self.refused += 1
                    return None
                continue
            self.version = result["version"]
            message = TranscriptMessage.from_dict(result["message"])
            assignment = _assignment(message)
            if assignment is not None and assignment != current:
                return message
            if assignment is None and message.text:  # no next task: a notice or "nothing for now" (maybe edited in place)
                return message
        return None

    async def ask(self) -> Any:
        newest = await self.client.last_message(self.user_id)
        after = newest.message_id if newest else 0
        self.version = await self.client.chat_version(self.user_id)
        await self.client.send_text(self.user_id, t("menu.get_task", "ko"))
        return await self.client.wait_for_bot_message(self.user_id, after, timeout=WAIT_S)

    async def run(self, delay: float = 0.0) -> None:
        await asyncio.sleep(delay)  # people arrive one after another, not all in the same instant
        await self.client.send_text(self.user_id, "/start")
        await self.client.wait_for_bot_message(self.user_id, 0, timeout=WAIT_S)
        idle_rounds = 0
        self.message = await self.ask()
        self.arrived = True
        while True:
            if self.leave_after is not None and self.answered >= self.leave_after:
                self.stopped = "left"
                return
            assignment = _assignment(self.message)
            if assignment is None:  # no task: a notice (blocked, exam...) or nothing left for now
                text = self.message.text or ""
                if text.startswith("⛔") or "📚" in text:
                    self.stopped = text
                    return
                if self._open_mine() == 0:
                    return
                idle_rounds += 1
                if idle_rounds > 40:
                    return
                await asyncio.sleep(0.5)  # slots of my tasks are held by others right now
                self.message = await self.ask()
                continue
            idle_rounds = 0
            task, _kind = self._task_of(assignment)
            label = self.mine.get(task)
            text = label if label is not None else t("task.skip", "ko")
            self.version = await self.client.chat_version(self.user_id)
            callback = await self.client.tap(self.user_id, self.message.message_id, text=text)
            if label is None:
                self.skipped += 1
            else:
                self.answered += 1
            changed = await self._wait_change(assignment, callback)
            self.message = changed if changed is not None else await self.ask()


def _counts(db_path: Path, project_id: int) -> tuple[int, int]:
    """(open normal tasks, open normal tasks that still have live leases)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as conn:
        row = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(taken > answers_count), 0) FROM task WHERE project_id = ? AND kind = 'normal' AND status = 'open'",
            (project_id,),
        ).fetchone()
    return int(row[0]), int(row[1])


async def _until_complete(
    db: Database, project_id: int, db_path: Path, runners: list[asyncio.Task[None]], replayers: list[Replayer], started: float
) -> tuple[float, int]:
    """Seconds until every normal task is done, or the open ones are out of everyone's hands with
    no eligible worker left (then the operator's ``project finish`` closes the batch); and how
    many tasks were finished that way."""
    last = checked = 0.0
    while True:
        await asyncio.sleep(0.5)
        open_tasks, live = _counts(db_path, project_id)
        now = time.perf_counter() - started
        if now - last >= 15:
            last = now
            busy = sum(not r.done() for r in runners)
            print(f"  {now:.0f} s: {open_tasks} tasks open ({live} with live leases), {busy} workers still at it", flush=True)
        if open_tasks == 0:
            return time.perf_counter() - started, 0
        arrived = all(
            r.arrived or task.done() for r, task in zip(replayers, runners, strict=True)
        )  # (before that, absent workers are not "gone")
        if arrived and live == 0 and now - checked >= 2:  # nothing in anyone's hands: can anything still happen?
            checked = now
            with db.read_session() as s:
                report = stuck.sweep(s, projects.find(s, project_id), finish=False)
            if len(report.stuck) == open_tasks and all(row.eligible == 0 for row in report.stuck):
                elapsed = time.perf_counter() - started
                with db.session() as s:
                    done = stuck.finish_project(s, projects.find(s, project_id))
                return elapsed, done.tasks_finished


async def replay(base: str, crowd: Crowd, url: str, project_id: int, churn: bool, seed: int) -> dict[str, Any]:
    db_path = Path(url.removeprefix("sqlite:///"))
    rng = random.Random(seed + 1)
    workers = list(crowd.answers)
    leaving = set(rng.sample(workers, round(CHURN * len(workers)))) if churn else set()
    async with unlimited_client(base) as client:
        replayers = []
        for i, w in enumerate(workers):
            user = await client.create_user(user_id=900_000 + i, first_name=f"w{i}", language_code="ko")
            n = len(crowd.answers[w])
            replayers.append(Replayer(client, user.id, crowd.answers[w], db_path, leave_after=rng.randrange(n) if w in leaving else None))
        started = time.perf_counter()
        runners = [asyncio.create_task(r.run(ARRIVAL_S * i)) for i, r in enumerate(replayers)]
        db = Database(url)
        try:
            completion, finished_by_operator = await _until_complete(db, project_id, db_path, runners, replayers, started)
        finally:
            crashed = [r.exception() for r in runners if r.done() and not r.cancelled() and r.exception() is not None]
            for r in runners:
                r.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
            if crashed:
                print(f"  {len(crashed)} simulated workers failed, e.g. {crashed[0]!r}", flush=True)
        with db.read_session() as s:
            results = {r.external_id: r.label for r in aggregate.aggregate_project(s, project_id)}
        db.dispose()
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as conn:
        accepted = int(
            conn.execute(
                "SELECT COUNT(*) FROM answer JOIN task ON task.id = answer.task_id "
                "WHERE answer.project_id = ? AND answer.status = 'accepted' AND task.kind = 'normal'",
                (project_id,),
            ).fetchone()[0]
        )
        stages = {
            int(tg): (str(stage), int(attempts))
            for tg, stage, attempts in conn.execute(
                "SELECT worker.tg_id, workerproject.stage, workerproject.exam_attempts FROM workerproject "
                "JOIN worker ON worker.id = workerproject.worker_id WHERE workerproject.project_id = ?",
                (project_id,),
            )
        }
    return {
        "completion_s": completion,
        "finished_by_operator": finished_by_operator,
        "results": results,
        "stopped": {w: stages.get(r.user_id, ("work", 0))[0] in ("blocked", "failed") for w, r in zip(workers, replayers, strict=True)},
        "accepted": accepted,
        "answered": sum(r.answered for r in replayers),
        "skipped": sum(r.skipped for r in replayers),
        "refused": sum(r.refused for r in replayers),
    }


def worker_accuracy(crowd: Crowd) -> dict[str, float]:
    return {w: sum(crowd.truth[task] == label for task, label in mine.items()) / len(mine) for w, mine in crowd.answers.items() if mine}


def run_set(args: argparse.Namespace, name: str) -> dict[str, Any]:
    crowd = load(args.data, name, args.limit)
    # "honest": above the crowd's median accuracy, measured on each worker's answers in the whole set
    accuracy_of = worker_accuracy(load(args.data, name, None))
    median_acc = statistics.median(accuracy_of.values())
    honest = {w for w, a in accuracy_of.items() if a > median_acc and w in crowd.answers}
    out: dict[str, Any] = {"tasks": len(crowd.tasks), "workers": len(crowd.answers), "source_answers": crowd.n_answers}
    for churn in (False, True):
        label = "churn" if churn else "plain"
        with tempfile.TemporaryDirectory(prefix="crowdpin-replay-") as tmp:
            workdir = Path(tmp)
            url, project_id, normal = prepare(workdir, crowd, args.seed, args.time_scale)
            if not churn:
                out["ds_all"] = round(ds_all(crowd, normal), 4)
            port = free_port()
            emulator = start_emulator(port, TOKEN, log=workdir / "emulator.log")
            bot = None
            try:
                base = f"http://127.0.0.1:{port}"
                asyncio.run(wait_http(base + "/_emu/health"))
                env = {
                    "BOT_TOKEN": TOKEN,
                    "TELEGRAM_API_BASE": base,
                    "DATABASE_URL": url,
                    "MEDIA_DIR": str(workdir / "media"),
                    "STUCK_SWEEP_SECONDS": str(max(0.5, 2 * args.time_scale)),
                }
                bot = start_bot(env, log=workdir / "bot.log")
                print(
                    f"{name} {label}: replaying {crowd.n_answers} answers of {len(crowd.answers)} workers on {len(crowd.tasks)} tasks ...",
                    flush=True,
                )
                run = asyncio.run(replay(base, crowd, url, project_id, churn, args.seed))
            finally:
                if bot is not None:
                    stop(bot)
                stop(emulator)
        hits = [run["results"].get(task) == crowd.truth[task] for task in crowd.tasks if task in normal]
        accuracy = sum(hits) / max(1, len(hits))
        blocked_honest = sum(1 for w in honest if run["stopped"][w])
        print(
            f"{name} {label}: {run['completion_s']:.1f} s, accuracy {accuracy:.4f}, {run['accepted']} answers on normal tasks accepted, "
            f"{run['skipped']} skips, {run['refused']} taps refused, {sum(run['stopped'].values())} workers stopped ({blocked_honest} of {len(honest)} honest), "
            f"{run['finished_by_operator']} tasks closed by project finish",
            flush=True,
        )
        if churn:
            out["completion_s_churn"] = round(run["completion_s"], 1)
            out["accuracy_churn"] = round(accuracy, 4)
            out["closed_by_finish_churn"] = run["finished_by_operator"]
        else:
            out["accuracy"] = round(accuracy, 4)
            out["honest_blocked"] = round(blocked_honest / max(1, len(honest)), 4)
            out["workers_blocked"] = sum(run["stopped"].values())
            on_normal = sum(1 for mine in crowd.answers.values() for task in mine if task in normal)
            out["answers_lost"] = round(1 - run["accepted"] / max(1, on_normal), 4)
            out["completion_s"] = round(run["completion_s"], 1)
            out["closed_by_finish"] = run["finished_by_operator"]
    out["churn_ratio"] = round(out["completion_s_churn"] / max(1e-9, out["completion_s"]), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "crowd-dev")
    parser.add_argument("--set", dest="sets", action="append", help="a set in --data (rte, dog; repeatable); default: rte and dog")
    parser.add_argument("--limit", type=int, default=0, help="replay only the first N tasks of each set (0: all)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies the compressed lease / idle / stuck times")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sets = args.sets or ["rte", "dog"]
    for name in sets:
        for part in ("answers", "gold"):
            if not (args.data / f"{name}_{part}.csv").exists():
                parser.error(f"no {name}_{part}.csv in {args.data}")
    figures = {name: run_set(args, name) for name in sets}
    emit({"limit": args.limit or None, "time_scale": args.time_scale, "sets": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
