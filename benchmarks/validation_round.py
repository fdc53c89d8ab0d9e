#!/usr/bin/env python
"""A validation round on a model's boxes: load, people judge, aggregate, export back.

    nice -n 5 python benchmarks/validation_round.py              # 2,000 boxes, 2 seeds
    python benchmarks/validation_round.py --boxes 90 --seeds 1   # smoke size

Each seed generates ``--boxes`` predicted boxes (3 per 320x240 image of shapes) with known truth
— 70 % right, 15 % wrong box, 15 % wrong class (``bot.sample_boxes``) — writes them as a COCO
detection file and as a YOLO folder, and times ``bot.tasks.datasets.load`` of each into a
confirm-box project (every image checked and hashed, every box validated, tasks written).

Then a crowd works through the COCO project exactly as the Telegram handlers drive it
(``service.next_task`` / ``answers.act_and_next``: leasing, golden mixing, quality rules, pay,
dynamic overlap) on a simulated clock, each person at their own pace. 5 % of the boxes are
golden tasks (their truth known to the bot). Aggregated verdicts (the export's default method)
are scored against the truth over the normal boxes, and the verified set is exported as COCO
and as YOLO (timed, every box written with ``--include-rejected``).

People (confirm-box is a quick look, so answers are faster than classify):

* careful — 80 %: right with p U(0.88, 0.97) (small boxes: 0.05 less), ~4 s per answer;
* sloppy — 15 %: right with p U(0.6, 0.75), ~2.5 s;
* spammers — 5 %: always tap ✅ Correct (the tempting lie: 70 % of boxes are right), ~1.5 s.

A wrong answer is one of the two other verdicts at random.

Figures: ``verdict_accuracy`` (aggregated verdict == truth), ``answers_per_box`` (normal answers
per normal box), ``cost_per_box_krw`` (everything paid, golden answers included, per normal
box), ``boxes_per_worker_hour`` (normal boxes verified per hour of people's answering time),
``load_boxes_per_s`` / ``export_boxes_per_s`` for COCO and YOLO (median over seeds; CPU seconds
per 1,000 boxes beside them: the machine is shared). The last line is one JSON object; per-seed
figures are printed above it.
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

START = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)
VERDICTS = ("correct", "wrong_box", "wrong_class")
PRICE = 10
GOLDEN_SHARE_OF_BOXES = 0.05
PROJECT: dict[str, Any] = {
    "price": PRICE,
    "golden_share": 0.08,
    "min_golden_for_block": 6,
    "accuracy_threshold": 0.6,
    "min_seconds": 0.8,
    "fast_strikes_warn": 5,
    "fast_strikes_block": 10,
    # dynamic overlap: stop at 2 agreeing careful answers, ask up to 4 where they disagree
    "overlap": 4,
    "min_overlap": 2,
    "confidence_target": 0.95,
}


@dataclass
class Person:
    kind: str
    accuracy: float
    median_s: float
    worker_id: int = 0
    card: Any = None
    busy_s: float = 0.0

    def seconds(self, rng: random.Random) -> float:
        return max(0.5, rng.lognormvariate(math.log(self.median_s), 0.45))

    def verdict(self, rng: random.Random, truth: str, small: bool) -> str:
        if self.kind == "spammer":
            return "correct"
        p = self.accuracy - (0.05 if small else 0.0)
        if rng.random() < p:
            return truth
        return rng.choice([v for v in VERDICTS if v != truth])


def make_crowd(rng: random.Random, n: int) -> list[Person]:
    n_spam = max(1, round(n * 0.05))
    n_sloppy = round(n * 0.15)
    people = [Person("spammer", 0.0, 1.5) for _ in range(n_spam)]
    people += [Person("sloppy", rng.uniform(0.6, 0.75), 2.5) for _ in range(n_sloppy)]
    people += [Person("careful", rng.uniform(0.88, 0.97), 4.0) for _ in range(n - n_spam - n_sloppy)]
    rng.shuffle(people)
    return people


def timed(fn: Any) -> tuple[Any, float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - wall0, time.process_time() - cpu0


def run(seed: int, n_boxes: int, n_workers: int) -> dict[str, Any]:
    from sqlalchemy import func, select, update

    from bot import sample_boxes, workers
    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.tasks import datasets, projects, quality, service
    from bot.tasks import export as exporting
    from bot.tasks.models import Answer, Project, ProjectStatus, Task, TaskKind
    from bot.tasks.service import NoTask, Refusal, TaskCard
    from bot.work import answers

    rng = random.Random(seed)
    quality.rng.seed(seed)
    with tempfile.TemporaryDirectory(prefix="validation_round_") as tmp:
        folder = Path(tmp) / "ds"
        preds = sample_boxes.generate(folder, math.ceil(n_boxes / 3), per_image=3, seed=seed)[:n_boxes]
        n_golden = max(1, round(len(preds) * GOLDEN_SHARE_OF_BOXES))
        coco = json.loads(sample_boxes.write_coco(folder, preds).read_text())
        for ann in coco["annotations"][:n_golden]:  # the first boxes are the golden ones
            ann["golden"] = preds[ann["id"] - 1].truth
        (folder / "predictions.json").write_text(json.dumps(coco))
        sample_boxes.write_yolo(folder, preds)
        url = f"sqlite:///{Path(tmp) / 'round.db'}"
        upgrade(url)
        db = Database(url)
        with db.session() as s:
            pid = projects.create(s, name="round", type="confirm-box", **PROJECT).id
            yid = projects.create(s, name="yolo", type="confirm-box", overlap=1).id
        assert pid is not None and yid is not None
        coco_load, coco_wall, coco_cpu = timed(lambda: datasets.load(db, pid, folder / "predictions.json", media_dir=None, copy=False))
        yolo_load, yolo_wall, yolo_cpu = timed(lambda: datasets.load(db, yid, folder, media_dir=None, copy=False))
        assert coco_load.created == yolo_load.created == len(preds), (coco_load, yolo_load)
        with db.session() as s:  # the YOLO copy only measured the load: out of the workers' way
            s.execute(update(Project).where(Project.id == yid).values(status=ProjectStatus.PAUSED.value))  # type: ignore[arg-type]

        # truth per task: by image file and box
        with db.read_session() as s:
            matched = sample_boxes.tasks_truth(s, pid, preds)
        truth: dict[int, Any] = {tid: pred for tid, (_, _, pred) in matched.items()}
        kinds: dict[int, str] = {tid: kind for tid, (_, kind, _) in matched.items()}
        crowd = make_crowd(rng, n_workers)
        with db.session() as s:
            for i, person in enumerate(crowd):
                person.worker_id = workers.register(s, tg_id=50_000 + i, name=f"{person.kind}{i}", now=START)[0].id  # type: ignore[assignment]

        behaviour = random.Random(seed * 7919 + 5)
        queue = [(behaviour.uniform(0, 300), i) for i in range(len(crowd))]
        heapq.heapify(queue)
        sim_cpu0 = time.process_time()
        actions = 0
        while queue:
            t, i = heapq.heappop(queue)
            person = crowd[i]
            now = START + timedelta(seconds=t)
            if person.card is None:
                nxt = db.call(service.next_task, person.worker_id, project_id=pid, now=now)
            else:
                card = person.card
                p = truth[card.task_id]
                value = person.verdict(behaviour, p.truth, max(p.box[2], p.box[3]) < 20)
                outcome = db.call(answers.act_and_next, person.worker_id, card.assignment_id, "answer", value, now=now)
                actions += 1
                nxt = outcome.next if not isinstance(outcome.result, Refusal) else None
                if nxt is None:
                    nxt = db.call(service.next_task, person.worker_id, project_id=pid, now=now)
            if isinstance(nxt, TaskCard):
                person.card = nxt
                dt = person.seconds(behaviour)
                person.busy_s += dt
                heapq.heappush(queue, (t + dt, i))
                continue
            person.card = None
            assert isinstance(nxt, NoTask)
            # blocked, or nothing left for this person: they leave
        sim_cpu = time.process_time() - sim_cpu0

        from bot.tasks.aggregate import aggregate_project

        with db.read_session() as s:
            results = [r for r in aggregate_project(s, pid) if kinds[r.task_id] == TaskKind.NORMAL.value]
            paid = int(s.execute(select(func.coalesce(func.sum(Answer.reward), 0)).where(Answer.project_id == pid)).scalar_one())
            normal_answers = int(
                s.execute(
                    select(func.count(Answer.id))
                    .join(Task, Task.id == Answer.task_id)
                    .where(Answer.project_id == pid, Task.kind == TaskKind.NORMAL.value)  # type: ignore[arg-type]
                ).scalar_one()
            )
        right = sum(r.label == truth[r.task_id].truth for r in results)
        n_normal = len(results)
        worker_hours = sum(p.busy_s for p in crowd) / 3600
        by_truth = {v: round(statistics.mean([r.label == v for r in results if truth[r.task_id].truth == v] or [0.0]), 4) for v in VERDICTS}

        out = Path(tmp) / "out"
        coco_export, coco_x_wall, coco_x_cpu = timed(
            lambda: exporting.export(db, pid, what="results", fmt="coco", out=out / "v.json", secret="s", include_rejected=True)
        )
        yolo_export, yolo_x_wall, yolo_x_cpu = timed(
            lambda: exporting.export(db, pid, what="results", fmt="yolo", out=out / "yolo", secret="s", include_rejected=True)
        )
        assert coco_export.rows == yolo_export.rows == n_normal  # every normal box (golden ones are not exported)
        db.dispose()
    n = len(preds)
    return {
        "seed": seed,
        "boxes": n,
        "golden": n_golden,
        "verdict_accuracy": round(right / n_normal, 4),
        "accuracy_by_truth": by_truth,
        "answers_per_box": round(normal_answers / n_normal, 3),
        "cost_per_box_krw": round(paid / n_normal, 2),
        "boxes_per_worker_hour": round(n_normal / worker_hours, 1) if worker_hours else 0.0,
        "actions": actions,
        "sim_cpu_ms_per_answer": round(sim_cpu * 1000 / max(1, actions), 2),
        "load_boxes_per_s": {"coco": round(n / coco_wall), "yolo": round(n / yolo_wall)},
        "load_boxes_per_cpu_s": {"coco": round(n / coco_cpu), "yolo": round(n / yolo_cpu)},
        "export_boxes_per_cpu_s": {"coco": round(n_normal / coco_x_cpu), "yolo": round(n_normal / yolo_x_cpu)},
        "export_boxes_per_s": {"coco": round(n_normal / coco_x_wall), "yolo": round(n_normal / yolo_x_wall)},
        "cpu_s_per_1000_boxes": {
            "load_coco": round(coco_cpu * 1000 / n, 3),
            "load_yolo": round(yolo_cpu * 1000 / n, 3),
            "export_coco": round(coco_x_cpu * 1000 / n_normal, 3),
            "export_yolo": round(yolo_x_cpu * 1000 / n_normal, 3),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1] if __doc__ else None)
    parser.add_argument("--boxes", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    runs = []
    for seed in range(1, args.seeds + 1):
        result = run(seed, args.boxes, args.workers)
        print(json.dumps(result, sort_keys=True), file=sys.stderr, flush=True)
        runs.append(result)

    def med(key: str, sub: str | None = None) -> float:
        values = [r[key][sub] if sub else r[key] for r in runs]
        return round(statistics.median(values), 4)

    summary = {
        "benchmark": "validation_round",
        "boxes": args.boxes,
        "workers": args.workers,
        "seeds": args.seeds,
        "verdict_accuracy": med("verdict_accuracy"),
        "answers_per_box": med("answers_per_box"),
        "cost_per_box_krw": med("cost_per_box_krw"),
        "boxes_per_worker_hour": med("boxes_per_worker_hour"),
        "load_boxes_per_s": {"coco": med("load_boxes_per_s", "coco"), "yolo": med("load_boxes_per_s", "yolo")},
        "export_boxes_per_s": {"coco": med("export_boxes_per_s", "coco"), "yolo": med("export_boxes_per_s", "yolo")},
        # the machine is shared: boxes per CPU-second (all threads of the process) next to wall-clock rates
        "load_boxes_per_cpu_s": {"coco": med("load_boxes_per_cpu_s", "coco"), "yolo": med("load_boxes_per_cpu_s", "yolo")},
        "export_boxes_per_cpu_s": {"coco": med("export_boxes_per_cpu_s", "coco"), "yolo": med("export_boxes_per_cpu_s", "yolo")},
        "verdict_accuracy_per_seed": [r["verdict_accuracy"] for r in runs],
        "targets": {"verdict_accuracy": 0.97, "answers_per_box": 3.0, "load_export_boxes_per_s": 5000},
    }
    summary["meets_targets"] = bool(
        summary["verdict_accuracy"] >= 0.97
        and summary["answers_per_box"] <= 3.0
        and min(*summary["load_boxes_per_s"].values(), *summary["export_boxes_per_s"].values()) >= 5000  # type: ignore[attr-defined]
    )
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
