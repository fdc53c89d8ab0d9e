#!/usr/bin/env python
"""A seeded simulated crowd run through the REAL quality logic: does it give trustworthy labels?

    python benchmarks/quality_sim.py                 # 600 tasks, 100 workers, 3 seeds
    python benchmarks/quality_sim.py --tasks 60 --workers 20 --seeds 1   # smoke size

Each run builds a fresh SQLite database with one classify project (3 labels, known truth for
every task), training tasks, golden tasks and the project's quality rules, then lets a crowd of
simulated workers — 70 % honest, 20 % noisy, 10 % spammers by default — work through
``bot.tasks.service`` exactly as the Telegram handlers do (``next_task`` / ``act_and_next``), on a
simulated clock (an event queue: a worker answers when their answer time has passed). Nothing of
the assignment, golden mixing, exam, rules or overlap is modelled here; only the people are.

The same crowd (same seed) works three times: with dynamic overlap (confidence target 0.98, at
least 2 and at most 7 answers) and with fixed overlaps of 5 and 3. Results are aggregated by
``bot.tasks.aggregate`` with each method and with the export's default (``auto``) and compared
with the truth: accuracy, and ``ece`` — expected calibration error, 10 equal-width confidence
bins, over the exported labels — with a reliability table of the default in the progress output.

Real crowds: with ``--crowd-dev DIR`` (default ``../shared/crowd-dev`` when it exists) each set
there (``<name>_answers.csv``, ``<name>_gold.csv``) is replayed into a project — a tenth of its
tasks become golden tasks (seeded), the others normal ones keeping the first 3, 5 or all of their
answers in source order — and aggregated the same way; accuracy and ECE are over the normal
tasks, per set.

People:

* honest — accuracy U(0.85, 0.97), ~6 s per answer (lognormal), skip 2 %;
* noisy — accuracy U(0.55, 0.75), ~4 s per answer, skip 3 %;
* spammers — half click at random fast (~1.2 s), half always tap the first button at a normal
  pace (~3 s); no skips.

Workers come and go in sessions of 10–40 answers with 5–40 minute breaks; a failed exam is
retried after the cool-down up to 3 times, then the worker gives up.

"Blocked" in the JSON means kept out of paid work at the end: blocked by a rule, or never passed
the exam. The last line is one JSON object; values are the median over the seeds.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LABELS = ["cat", "dog", "bird"]
METHODS = ("majority_vote", "weighted_vote", "dawid_skene")
DEFAULT = "auto"  # what an export uses unless told otherwise
EVALUATED = (*METHODS, DEFAULT)
REAL_OVERLAPS = (3, 5, 0)  # 0: all answers
REAL_GOLDEN_SHARE = 0.1
START = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)  # a Monday, 09:00 in Seoul

RULES: dict[str, Any] = {
    "golden_share": 0.1,
    "training_required": True,
    "exam_size": 8,
    "exam_pass": 0.75,
    "exam_cooldown_minutes": 10,
    "min_golden_for_block": 10,
    "accuracy_threshold": 0.5,
    "min_seconds": 2.0,
    "fast_strikes_warn": 3,
    "fast_strikes_block": 6,
    "max_skips_in_row": 8,
    "daily_cap": 0,
    "price": 10,
}
MODES: dict[str, dict[str, Any]] = {
    # hard tasks may take up to 7 answers, easy ones stop at 2: fewer answers on average than a
    # fixed 5, and the answers go where they are needed
    "dynamic": {"overlap": 7, "min_overlap": 2, "confidence_target": 0.98},
    "fixed5": {"overlap": 5, "min_overlap": 1, "confidence_target": None},
    "fixed3": {"overlap": 3, "min_overlap": 1, "confidence_target": None},
}


@dataclass
class Person:
    kind: str  # honest | noisy | spammer
    accuracy: float
    style: str  # careful | random | constant
    median_s: float
    sigma: float
    skip_p: float
    arrive_s: float
    worker_id: int = 0
    exam_failures: int = 0
    session_left: int = 0
    card: Any = None

    def answer_seconds(self, rng: random.Random) -> float:
        return max(0.3, rng.lognormvariate(math.log(self.median_s), self.sigma))

    def choose(self, rng: random.Random, truth: str) -> tuple[str, str]:
        """(action, value) for the act_and_next call: a label index, or a skip."""
        if rng.random() < self.skip_p:
            return "skip", ""
        if self.style == "constant":
            label = LABELS[0]
        elif self.style == "random":
            label = rng.choice(LABELS)
        elif rng.random() < self.accuracy:
            label = truth
        else:
            label = rng.choice([x for x in LABELS if x != truth])
        return "label", str(LABELS.index(label))


def make_crowd(rng: random.Random, n: int, shares: tuple[float, float, float]) -> list[Person]:
    n_noisy = round(n * shares[1])
    n_spam = round(n * shares[2])
    n_honest = n - n_noisy - n_spam
    people: list[Person] = []
    for _ in range(n_honest):
        people.append(Person("honest", rng.uniform(0.85, 0.97), "careful", 6.0, 0.5, 0.02, 0.0))
    for _ in range(n_noisy):
        people.append(Person("noisy", rng.uniform(0.55, 0.75), "careful", 4.0, 0.6, 0.03, 0.0))
    for i in range(n_spam):
        if i % 2 == 0:
            people.append(Person("spammer", 1 / 3, "random", 1.2, 0.4, 0.0, 0.0))
        else:
            people.append(Person("spammer", 1 / 3, "constant", 3.0, 0.5, 0.0, 0.0))
    rng.shuffle(people)
    for person in people:
        person.arrive_s = rng.uniform(0, 20 * 60)
    return people


@dataclass
class RunResult:
    mode: str
    accuracy: dict[str, float]
    ece: dict[str, float]
    reliability: list[Any]  # calibration.Bin of the default method
    answers_per_task: float
    golden_per_task: float
    blocked: dict[str, float]
    spam_answer_share: float
    actions: int
    cpu_s: float
    wall_s: float
    sim_minutes: float
    stages: dict[str, dict[str, int]] = field(default_factory=dict)


def score_methods(session: Any, project_id: int, truth: dict[int, str]) -> tuple[dict[str, float], dict[str, float], list[Any]]:
    """(accuracy, ece) per method over the exported labels of a project, and the default's
    reliability table. Unlabelled tasks count as wrong for accuracy and are left out of ECE
    (an export gives them no confidence to trust)."""
    from bot.tasks import calibration
    from bot.tasks.aggregate import aggregate_project

    accuracy: dict[str, float] = {}
    ece: dict[str, float] = {}
    table: list[Any] = []
    for method in EVALUATED:
        rows = list(aggregate_project(session, project_id, method))
        accuracy[method] = sum(r.label == truth[r.task_id] for r in rows) / len(rows)
        labelled = [r for r in rows if r.label is not None]
        confidence = [r.confidence for r in labelled]
        correct = [r.label == truth[r.task_id] for r in labelled]
        ece[method] = calibration.ece(confidence, correct)
        if method == DEFAULT:
            table = calibration.reliability(confidence, correct)
    return accuracy, ece, table


def reliability_lines(table: list[Any], indent: str = "    ") -> list[str]:
    """The reliability table as text: one line per non-empty bin."""
    lines = [f"{indent}confidence bin   labels  mean conf  right"]
    for b in table:
        if b.n:
            lines.append(f"{indent}[{b.lo:.1f}, {b.hi:.1f}{']' if b.hi >= 1 else ')'}  {b.n:8d}  {b.confidence:9.3f}  {b.accuracy:5.3f}")
    return lines


def replay_crowd(folder: Path, name: str, overlap: int, seed: int, golden_share: float = REAL_GOLDEN_SHARE) -> dict[str, Any]:
    """A real crowd's answers loaded into a fresh project (a tenth of the tasks golden), then
    aggregated like an export: accuracy and ECE per method over the normal tasks."""
    import csv

    from sqlalchemy import insert, select

    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.tasks import intake, projects
    from bot.tasks.models import Answer, Assignment, Image, TaskKind
    from bot.workers.models import Worker

    with (folder / f"{name}_gold.csv").open(newline="", encoding="utf-8") as fh:
        gold = {row["task"]: row["label"] for row in csv.DictReader(fh)}
    answers: dict[str, list[tuple[str, str]]] = {}
    with (folder / f"{name}_answers.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["task"] in gold:
                answers.setdefault(row["task"], []).append((row["worker"], row["label"]))
    rng = random.Random(seed)
    tasks = sorted(answers)
    golden = set(rng.sample(tasks, round(golden_share * len(tasks))))
    labels = sorted(set(gold.values()) | {label for rows in answers.values() for _w, label in rows})
    with tempfile.TemporaryDirectory(prefix="quality_real_") as tmp:
        url = f"sqlite:///{Path(tmp) / 'real.db'}"
        upgrade(url)
        db = Database(url)
        truth: dict[int, str] = {}
        with db.session() as s:
            project = projects.create(s, name=name, labels=labels, overlap=max(1, overlap or 10))
            image = Image(sha256="0" * 64, path="/dev/null", width=1, height=1)
            s.add(image)
            s.flush()
            ids: dict[str, int] = {}
            for ext in tasks:
                is_golden = ext in golden
                task, _ = intake.add_task(
                    s,
                    project,
                    image,
                    external_id=ext,
                    kind=TaskKind.GOLDEN if is_golden else TaskKind.NORMAL,
                    golden=gold[ext] if is_golden else None,
                )
                ids[ext] = task.id  # type: ignore[assignment]
                truth[task.id] = gold[ext]  # type: ignore[index]
            people = sorted({w for rows in answers.values() for w, _l in rows})
            s.execute(insert(Worker), [{"tg_id": 900_000 + i, "name": f"src:{w}"} for i, w in enumerate(people)])
            worker_id = {name: wid for wid, name in s.execute(select(Worker.id, Worker.name)).all() if name.startswith("src:")}
            assignments, rows = [], []
            for ext in tasks:
                mine = answers[ext] if ext in golden or not overlap else answers[ext][:overlap]
                for w, label in mine:
                    assignments.append(
                        {
                            "task_id": ids[ext],
                            "worker_id": worker_id[f"src:{w}"],
                            "project_id": project.id,
                            "status": "answered",
                            "leased_at": START,
                            "expires_at": START,
                            "closed_at": START,
                        }
                    )
                    rows.append((ids[ext], worker_id[f"src:{w}"], label, ext in golden))
            s.execute(insert(Assignment), assignments)
            assignment_id = {(t, w): a for a, t, w in s.execute(select(Assignment.id, Assignment.task_id, Assignment.worker_id)).all()}
            s.execute(
                insert(Answer),
                [
                    {
                        "assignment_id": assignment_id[(t, w)],
                        "task_id": t,
                        "worker_id": w,
                        "project_id": project.id,
                        "value": label,
                        "is_golden": g,
                        "correct": (label == truth[t]) if g else None,
                        "status": "accepted",
                        "created_at": START,
                    }
                    for t, w, label, g in rows
                ],
            )
            project_id = project.id
        with db.read_session() as s:
            accuracy, ece, table = score_methods(s, project_id, truth)
        db.dispose()
    return {"accuracy": accuracy, "ece": ece, "reliability": table, "tasks": len(tasks) - len(golden), "golden": len(golden)}


def run(mode: str, seed: int, n_tasks: int, n_workers: int, n_golden: int, shares: tuple[float, float, float]) -> RunResult:
    from sqlalchemy import func, select

    from bot import workers
    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.tasks import intake, projects, quality, service
    from bot.tasks.models import Answer, Image, Task, TaskKind, TaskStatus, WorkerProject
    from bot.tasks.service import NoTask, Refusal, TaskCard
    from bot.work import answers

    rng = random.Random(seed)
    crowd = make_crowd(rng, n_workers, shares)
    truth_rng = random.Random(seed * 7919 + 1)
    quality.rng.seed(seed)
    behaviour = random.Random(seed * 104729 + 3)  # same people, same choices in both modes
    with tempfile.TemporaryDirectory(prefix="quality_sim_") as tmp:
        url = f"sqlite:///{Path(tmp) / 'sim.db'}"
        upgrade(url)
        db = Database(url)
        truth: dict[int, str] = {}
        with db.session() as s:
            project = projects.create(s, name="sim", labels=LABELS, **RULES, **MODES[mode])
            image = Image(sha256="0" * 64, path="/dev/null", width=320, height=240)
            s.add(image)
            s.flush()
            for i in range(n_tasks):
                task, _ = intake.add_task(s, project, image, external_id=f"t{i}")
                truth[task.id] = truth_rng.choice(LABELS)  # type: ignore[index]
            for i in range(n_golden):
                label = truth_rng.choice(LABELS)
                task, _ = intake.add_task(s, project, image, external_id=f"g{i}", kind=TaskKind.GOLDEN, golden=label)
                truth[task.id] = label  # type: ignore[index]
            for i in range(3):
                label = LABELS[i]
                task, _ = intake.add_task(
                    s, project, image, external_id=f"tr{i}", kind=TaskKind.TRAINING, golden=label, explanation="look at the ears"
                )
                truth[task.id] = label  # type: ignore[index]
            project_id = project.id
            for i, person in enumerate(crowd):
                worker, _ = workers.register(s, tg_id=10_000 + i, name=f"{person.kind}{i}", now=START)
                person.worker_id = worker.id  # type: ignore[assignment]

        def open_normal() -> int:
            with db.read_session() as s:
                return int(
                    s.execute(
                        select(func.count(Task.id)).where(
                            Task.project_id == project_id, Task.kind == TaskKind.NORMAL.value, Task.status == TaskStatus.OPEN.value
                        )
                    ).scalar_one()
                )

        queue: list[tuple[float, int]] = [(p.arrive_s, i) for i, p in enumerate(crowd)]
        heapq.heapify(queue)
        actions = 0
        last_t = 0.0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        while queue:
            t, i = heapq.heappop(queue)
            last_t = t
            person = crowd[i]
            now = START + timedelta(seconds=t)
            if person.session_left <= 0:
                person.session_left = behaviour.randint(10, 40)
            if person.card is None:
                nxt = db.call(service.next_task, person.worker_id, project_id=project_id, now=now)
            else:
                action, value = person.choose(behaviour, truth[person.card.task_id])
                outcome = db.call(answers.act_and_next, person.worker_id, person.card.assignment_id, action, value, now=now)
                actions += 1
                person.session_left -= 1
                nxt = outcome.next if not isinstance(outcome.result, Refusal) else None
                if nxt is None:
                    nxt = db.call(service.next_task, person.worker_id, project_id=project_id, now=now)
                if person.session_left <= 0 and isinstance(nxt, TaskCard):
                    # a break: the lease expires while the worker is away, like a closed phone
                    person.card = None
                    heapq.heappush(queue, (t + behaviour.uniform(5, 40) * 60, i))
                    continue
            if isinstance(nxt, TaskCard):
                person.card = nxt
                heapq.heappush(queue, (t + person.answer_seconds(behaviour), i))
                continue
            person.card = None
            assert isinstance(nxt, NoTask)
            key = nxt.notice.key if nxt.notice else ""
            if key == "quality.exam.cooldown":
                person.exam_failures += 1
                if person.exam_failures < 3:
                    heapq.heappush(queue, (t + nxt.notice.params["minutes"] * 60 + 1, i))  # type: ignore[union-attr]
            elif key == "quality.skips.pause":
                heapq.heappush(queue, (t + nxt.notice.params["minutes"] * 60 + 1, i))  # type: ignore[union-attr]
            elif not key and open_normal() > 0:
                heapq.heappush(queue, (t + 60, i))  # tasks are out with others; look again soon
            # blocked, no exam tasks left, or no work left: the worker leaves
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0

        with db.read_session() as s:
            accuracy, ece, reliability = score_methods(s, project_id, truth)
            normal_answers = s.execute(
                select(Answer.worker_id, func.count(Answer.id))
                .join(Task, Task.id == Answer.task_id)
                .where(Task.project_id == project_id, Task.kind == TaskKind.NORMAL.value)
                .group_by(Answer.worker_id)
            ).all()
            golden_answers = s.execute(
                select(func.count(Answer.id))
                .join(Task, Task.id == Answer.task_id)
                .where(Task.project_id == project_id, Task.kind == TaskKind.GOLDEN.value)
            ).scalar_one()
            stage_of = {
                w: stage + (f":{reason}" if reason else "")
                for w, stage, reason in s.execute(
                    select(WorkerProject.worker_id, WorkerProject.stage, WorkerProject.blocked_reason).where(
                        WorkerProject.project_id == project_id
                    )
                )
            }
        db.dispose()

    by_worker = {p.worker_id: p for p in crowd}
    total_normal = sum(n for _, n in normal_answers)
    spam_normal = sum(n for w, n in normal_answers if by_worker[w].kind == "spammer")
    blocked: dict[str, float] = {}
    stages: dict[str, dict[str, int]] = {}
    for kind in ("honest", "noisy", "spammer"):
        members = [p for p in crowd if p.kind == kind]
        kept_out = [p for p in members if stage_of.get(p.worker_id, "work") != "work"]
        blocked[kind] = len(kept_out) / len(members) if members else 0.0
        counts: dict[str, int] = {}
        for p in members:
            stage = stage_of.get(p.worker_id, "-")
            counts[stage] = counts.get(stage, 0) + 1
        stages[kind] = counts
    return RunResult(
        mode=mode,
        accuracy=accuracy,
        ece=ece,
        reliability=reliability,
        answers_per_task=total_normal / n_tasks,
        golden_per_task=golden_answers / n_tasks,
        blocked=blocked,
        spam_answer_share=spam_normal / total_normal if total_normal else 0.0,
        actions=actions,
        cpu_s=cpu,
        wall_s=wall,
        sim_minutes=last_t / 60,
        stages=stages,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--golden", type=int, default=0, help="golden tasks (default: tasks / 4, at least 40)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="first seed")
    parser.add_argument("--shares", default="0.7,0.2,0.1", help="honest,noisy,spammer")
    parser.add_argument("--target", type=float, default=MODES["dynamic"]["confidence_target"], help="dynamic: confidence target")
    parser.add_argument("--max-overlap", type=int, default=MODES["dynamic"]["overlap"], help="dynamic: maximum overlap")
    parser.add_argument("--min-overlap", type=int, default=MODES["dynamic"]["min_overlap"], help="dynamic: minimum overlap")
    parser.add_argument(
        "--crowd-dev", type=Path, default=ROOT.parent / "shared" / "crowd-dev", help="real crowds to replay (skipped if missing)"
    )
    parser.add_argument("--no-real", action="store_true", help="skip the real crowds")
    parser.add_argument("--real-golden", type=float, default=REAL_GOLDEN_SHARE, help="share of a real crowd's tasks made golden")
    args = parser.parse_args(argv)
    MODES["dynamic"] = {"overlap": args.max_overlap, "min_overlap": args.min_overlap, "confidence_target": args.target}
    shares = tuple(float(x) for x in args.shares.split(","))
    if len(shares) != 3 or abs(sum(shares) - 1) > 1e-6:
        parser.error("--shares needs three numbers that sum to 1")
    n_golden = args.golden or max(40, args.tasks // 4)

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # warnings off: blocks are expected here

    modes = tuple(MODES)
    results: dict[str, list[RunResult]] = {mode: [] for mode in modes}
    seeds = list(range(args.seed, args.seed + args.seeds))
    for seed in seeds:
        for mode in modes:
            r = run(mode, seed, args.tasks, args.workers, n_golden, shares)  # type: ignore[arg-type]
            results[mode].append(r)
            print(
                f"seed {seed} {mode:7s}: acc mv={r.accuracy['majority_vote']:.4f} wv={r.accuracy['weighted_vote']:.4f} "
                f"ds={r.accuracy['dawid_skene']:.4f} | ece mv={r.ece['majority_vote']:.3f} wv={r.ece['weighted_vote']:.3f} "
                f"ds={r.ece['dawid_skene']:.3f} default={r.ece[DEFAULT]:.3f} | answers/task {r.answers_per_task:.2f} (+{r.golden_per_task:.2f} golden) | "
                f"blocked spam {r.blocked['spammer']:.0%} honest {r.blocked['honest']:.1%} noisy {r.blocked['noisy']:.0%} | "
                f"spam answers {r.spam_answer_share:.1%} | {r.actions} actions, {1000 * r.cpu_s / max(1, r.actions):.2f} ms CPU/action, "
                f"{r.sim_minutes:.0f} sim-min | stages {r.stages}",
                flush=True,
            )
            print("\n".join(reliability_lines(r.reliability)), flush=True)

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 4)

    real: dict[str, dict[str, Any]] = {}
    folder = args.crowd_dev
    if not args.no_real and folder.is_dir():
        for answers_file in sorted(folder.glob("*_answers.csv")):
            name = answers_file.name[: -len("_answers.csv")]
            if not (folder / f"{name}_gold.csv").is_file():
                continue
            real[name] = {}
            for overlap in REAL_OVERLAPS:
                runs = [replay_crowd(folder, name, overlap, seed, args.real_golden) for seed in seeds]
                key = str(overlap) if overlap else "all"
                real[name][key] = {
                    "accuracy": {m: med([x["accuracy"][m] for x in runs]) for m in EVALUATED},
                    "ece": {m: med([x["ece"][m] for x in runs]) for m in EVALUATED},
                }
                for seed, x in zip(seeds, runs):
                    print(
                        f"real {name} overlap {key:>3s} seed {seed}: {x['tasks']} tasks (+{x['golden']} golden) | acc "
                        + " ".join(f"{m}={x['accuracy'][m]:.3f}" for m in EVALUATED)
                        + " | ece "
                        + " ".join(f"{m}={x['ece'][m]:.3f}" for m in EVALUATED),
                        flush=True,
                    )
                    print("\n".join(reliability_lines(x["reliability"])), flush=True)

    dyn, fix = results["dynamic"], results["fixed5"]
    accuracy = {m: med([r.accuracy[m] for r in dyn]) for m in METHODS}
    accuracy_by_mode = {mode: {m: med([r.accuracy[m] for r in results[mode]]) for m in EVALUATED} for mode in modes}
    accuracy_fixed5 = {m: med([r.accuracy[m] for r in fix]) for m in METHODS}
    ece = {mode: {m: round(statistics.median([r.ece[m] for r in results[mode]]), 4) for m in EVALUATED} for mode in modes}
    per_task = {"dynamic": med([r.answers_per_task for r in dyn]), "fixed5": med([r.answers_per_task for r in fix])}
    per_task["fixed3"] = med([r.answers_per_task for r in results["fixed3"]])
    all_runs = [r for mode in modes for r in results[mode]]
    spammers_blocked = med([r.blocked["spammer"] for r in all_runs])
    honest_blocked = med([r.blocked["honest"] for r in all_runs])
    saving = 1 - per_task["dynamic"] / per_task["fixed5"] if per_task["fixed5"] else 0.0
    summary = {
        "accuracy": accuracy,
        "accuracy_fixed5": accuracy_fixed5,
        "accuracy_by_mode": accuracy_by_mode,
        "ece": ece,
        "ece_default": {mode: ece[mode][DEFAULT] for mode in modes},
        "real_crowds": real,
        "spammers_blocked": spammers_blocked,
        "honest_blocked": honest_blocked,
        "noisy_blocked": med([r.blocked["noisy"] for r in all_runs]),
        "answers_per_task": per_task,
        "answer_saving": round(saving, 4),
        "golden_per_task": {mode: med([r.golden_per_task for r in results[mode]]) for mode in modes},
        "spam_answer_share": {mode: med([r.spam_answer_share for r in results[mode]]) for mode in modes},
        "cpu_ms_per_action": med([1000 * r.cpu_s / max(1, r.actions) for r in all_runs]),
        "targets": {
            "dawid_skene_ge_0.97": all(accuracy_by_mode[mode]["dawid_skene"] >= 0.97 for mode in modes),
            "default_ece_le_0.05": all(ece[mode][DEFAULT] <= 0.05 for mode in modes),
            "spammers_blocked_ge_0.9": spammers_blocked >= 0.9,
            "honest_blocked_le_0.02": honest_blocked <= 0.02,
            "dynamic_saves_ge_25pct": saving >= 0.25,
            "dynamic_accuracy_not_lower": accuracy["dawid_skene"] >= accuracy_fixed5["dawid_skene"],
        },
        "config": {
            "tasks": args.tasks,
            "golden": n_golden,
            "workers": args.workers,
            "shares": shares,
            "seeds": seeds,
            "rules": RULES,
            "modes": MODES,
            "real_golden_share": args.real_golden,
        },
    }
    print(json.dumps(summary, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
