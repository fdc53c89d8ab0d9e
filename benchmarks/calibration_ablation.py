#!/usr/bin/env python
"""Which part of the calibration does the work? The export's aggregation with its parts switched
off one at a time, on the real crowds of ``../shared/crowd-dev`` and on a simulated crowd.

    python benchmarks/calibration_ablation.py              # 3 seeds
    python benchmarks/calibration_ablation.py --seeds 1

Variants (Dawid–Skene unless named):

* ``ml`` — no prior, no temperature: what crowd-kit's DawidSkene exports;
* ``prior`` — the Dirichlet prior toward the crowd's average worker, no temperature;
* ``temperature`` — no prior, temperature fitted on golden tasks;
* ``prior+temperature`` — both: the export's default;
* ``wv`` / ``wv+temperature`` — the weighted vote without and with the temperature.

Each real crowd keeps the first 3, 5 or all of its answers per task; a tenth of its tasks are
golden (seeded). The simulated crowd is the quality benchmark's people (70 % honest, 20 % noisy,
10 % spammers) answering 600 tasks 3 times each and 150 golden tasks 10 times each, without the
bot's exam and rules (so spammers stay in: a harder crowd than quality_sim's). Figures are ECE
and accuracy over the normal tasks, medians over the seeds; the last line is JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VARIANTS = {  # name: (method, prior, temperature on)
    "ml": ("dawid_skene", 0.0, False),
    "prior": ("dawid_skene", None, False),
    "temperature": ("dawid_skene", 0.0, True),
    "prior+temperature": ("dawid_skene", None, True),
    "wv": ("weighted_vote", None, False),
    "wv+temperature": ("weighted_vote", None, True),
}
GOLDEN_SHARE = 0.1


@contextmanager
def variant(prior: float | None, temperature: bool) -> Iterator[None]:
    from bot.tasks import aggregate

    saved = aggregate.DS_PRIOR, aggregate.CALIBRATION_MIN_GOLDEN
    try:
        if prior is not None:
            aggregate.DS_PRIOR = prior
        if not temperature:
            aggregate.CALIBRATION_MIN_GOLDEN = 10**9
        yield
    finally:
        aggregate.DS_PRIOR, aggregate.CALIBRATION_MIN_GOLDEN = saved


def make_data(labels: list[str], answers: list[tuple[int, int, str]], truth: dict[int, str], golden: set[int]) -> Any:
    """The aggregator's input built in memory (no database): normal votes and golden answers."""
    from bot.tasks.aggregate import _Data, _Vote
    from bot.tasks.models import Project

    project = Project(id=1, name="ablation", type="classify", labels_json=json.dumps(labels))
    tasks = [(t, f"t{t}", None) for t in sorted(truth) if t not in golden]
    votes = [_Vote(t, w, v, None) for t, w, v in answers if t not in golden]
    gold = [(t, w, v, truth[t]) for t, w, v in answers if t in golden]
    return _Data(project, tasks, votes, gold)


def score(data: Any, truth: dict[int, str]) -> dict[str, dict[str, float]]:
    from bot.tasks import calibration
    from bot.tasks.aggregate import calibrated_labels

    out = {}
    for name, (method, prior, temperature) in VARIANTS.items():
        with variant(prior, temperature):
            labels = calibrated_labels(data, method).labels
        conf = [c for _label, c in labels.values()]
        right = [label == truth[t] for t, (label, _c) in labels.items()]
        out[name] = {"ece": calibration.ece(conf, right), "accuracy": sum(right) / len(right)}
    return out


def real_crowd(folder: Path, name: str, overlap: int, seed: int) -> tuple[Any, dict[int, str]]:
    with (folder / f"{name}_gold.csv").open(newline="", encoding="utf-8") as fh:
        gold = {row["task"]: row["label"] for row in csv.DictReader(fh)}
    per_task: dict[str, list[tuple[str, str]]] = {}
    with (folder / f"{name}_answers.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["task"] in gold:
                per_task.setdefault(row["task"], []).append((row["worker"], row["label"]))
    names = sorted(per_task)
    t_id = {t: i for i, t in enumerate(names)}
    workers = sorted({w for rows in per_task.values() for w, _l in rows})
    w_id = {w: i for i, w in enumerate(workers)}
    golden = set(random.Random(seed).sample(range(len(names)), round(GOLDEN_SHARE * len(names))))
    answers = []
    for t in names:
        rows = per_task[t] if t_id[t] in golden or not overlap else per_task[t][:overlap]
        answers += [(t_id[t], w_id[w], label) for w, label in rows]
    truth = {t_id[t]: gold[t] for t in names}
    labels = sorted(set(gold.values()))
    return make_data(labels, answers, truth, golden), {t: v for t, v in truth.items() if t not in golden}


def simulated_crowd(seed: int) -> tuple[Any, dict[int, str]]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("quality_sim_ablation", ROOT / "benchmarks" / "quality_sim.py")
    assert spec is not None and spec.loader is not None
    sim = importlib.util.module_from_spec(spec)
    sys.modules["quality_sim_ablation"] = sim
    spec.loader.exec_module(sim)
    rng = random.Random(seed)
    people = sim.make_crowd(rng, 100, (0.7, 0.2, 0.1))
    truth = {t: rng.choice(sim.LABELS) for t in range(750)}
    golden = set(range(600, 750))
    answers = []
    for t, label in truth.items():
        for w in rng.sample(range(len(people)), 10 if t in golden else 3):
            action, value = people[w].choose(rng, label)
            if action == "label":
                answers.append((t, w, sim.LABELS[int(value)]))
    data = make_data(list(sim.LABELS), answers, truth, golden)
    return data, {t: v for t, v in truth.items() if t not in golden}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--crowd-dev", type=Path, default=ROOT.parent / "shared" / "crowd-dev")
    args = parser.parse_args(argv)
    seeds = list(range(1, args.seeds + 1))
    sets: dict[str, Any] = {"simulated": lambda seed: simulated_crowd(seed)}
    if args.crowd_dev.is_dir():
        for path in sorted(args.crowd_dev.glob("*_answers.csv")):
            name = path.name[: -len("_answers.csv")]
            for overlap in (3, 5, 0):
                key = f"{name}/{overlap or 'all'}"
                sets[key] = lambda seed, name=name, overlap=overlap: real_crowd(args.crowd_dev, name, overlap, seed)
    result: dict[str, dict[str, dict[str, float]]] = {}
    for key, build in sets.items():
        runs = [score(*build(seed)) for seed in seeds]
        result[key] = {v: {m: round(statistics.median(r[v][m] for r in runs), 4) for m in ("ece", "accuracy")} for v in VARIANTS}
        print(f"{key:12s} " + "  ".join(f"{v}: ece {x['ece']:.3f} acc {x['accuracy']:.3f}" for v, x in result[key].items()), flush=True)
    print(json.dumps({"ablation": result, "seeds": seeds, "golden_share": GOLDEN_SHARE}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
