"""Our numpy aggregation models against crowd-kit on the same answers.

crowd-kit is a test dependency only: it is the reference implementation. With the prior at zero
our models are the same models, so labels and posteriors must agree to 1e-6 — on crowds drawn
like the quality benchmark's (honest, noisy, spammers), and on the awkward shapes: ties, workers
who answer only some tasks or only once, single-answer tasks, golden truths.
"""

from __future__ import annotations

import importlib.util
import random
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import (
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    SegmentationEM,
    SegmentationMajorityVote,
    Wawa,
)

from bot.tasks.crowd_models import Answers, Fit, dawid_skene, majority_vote, mask_em, mask_vote, wawa

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-6


def _quality_sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality_sim_models", ROOT / "benchmarks" / "quality_sim.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["quality_sim_models"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("quality_sim_models", None)
    return module


def simulated_crowd(seed: int, n_tasks: int = 150, n_workers: int = 25, overlap: int = 3) -> tuple[pd.DataFrame, dict[str, str]]:
    """Answers of the benchmark's simulated people (same mix and behaviour), ``overlap`` per task."""
    sim = _quality_sim()
    rng = random.Random(seed)
    crowd = sim.make_crowd(rng, n_workers, (0.7, 0.2, 0.1))
    truth = {f"t{i}": rng.choice(sim.LABELS) for i in range(n_tasks)}
    rows = []
    for task, label in truth.items():
        for w in rng.sample(range(n_workers), overlap):
            action, value = crowd[w].choose(rng, label)
            if action == "label":
                rows.append((task, f"w{w}", sim.LABELS[int(value)]))
    return pd.DataFrame(rows, columns=["task", "worker", "label"]), truth


def encode(frame: pd.DataFrame) -> tuple[Answers, list[str], list[str]]:
    """Integer codes with crowd-kit's label order (its column order breaks its ties)."""
    labels = [str(c) for c in MajorityVote().fit(frame).probas_.columns]
    tasks = sorted(frame["task"].unique())
    workers = sorted(frame["worker"].unique())
    t, w, lab = (pd.Index(tasks), pd.Index(workers), pd.Index(labels))
    answers = Answers.of(t.get_indexer(frame["task"]), w.get_indexer(frame["worker"]), lab.get_indexer(frame["label"]), len(labels))
    return answers, tasks, labels


def assert_same(ours: Fit, probas: pd.DataFrame, labels: pd.Series, tasks: list[str], names: list[str]) -> None:
    theirs = probas.reindex(index=tasks, columns=names).to_numpy(dtype=float)
    assert not np.isnan(theirs).any()
    np.testing.assert_allclose(ours.probas, theirs, atol=TOL, rtol=0)
    ranked = np.sort(theirs, axis=1)
    clear = ranked[:, -1] - (ranked[:, -2] if theirs.shape[1] > 1 else 0) > 1e-9
    ours_named = np.array(names)[ours.labels]
    theirs_named = labels.reindex(tasks).astype(str).to_numpy()
    assert (ours_named[clear] == theirs_named[clear]).all()
    # ties: crowd-kit's order depends on the pandas call (value_counts or groupby); both pick
    # one of the tied best labels, ours the first in the given label order
    for i in np.flatnonzero(~clear):
        best = {names[j] for j in np.flatnonzero(theirs[i] >= theirs[i].max() - 1e-9)}
        assert theirs_named[i] in best and ours_named[i] in best
        assert ours_named[i] == next(n for n in names if n in best)


def check_all(frame: pd.DataFrame, golden: dict[str, str] | None = None) -> None:
    answers, tasks, names = encode(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mv = MajorityVote().fit(frame)
        assert_same(majority_vote(answers), mv.probas_, mv.labels_, tasks, names)
        # crowd-kit's Wawa.predict trips over newer scikit-learn; its own two steps are these
        skills = Wawa().fit(frame).skills_
        ww = MajorityVote().fit(frame, skills=skills)
        ours_wawa = wawa(answers)
        assert_same(ours_wawa, ww.probas_, ww.labels_, tasks, names)
        workers = sorted(frame["worker"].unique())
        np.testing.assert_allclose(ours_wawa.skills, skills.reindex(workers).to_numpy(float), atol=TOL)
        ds = DawidSkene(n_iter=100).fit(frame)
        fit = dawid_skene(answers)
        assert_same(fit, ds.probas_, ds.labels_, tasks, names)
        assert fit.iterations == len(ds.loss_history_)
        oc = OneCoinDawidSkene(n_iter=100).fit(frame)
        one = dawid_skene(answers, one_coin=True)
        assert_same(one, oc.probas_, oc.labels_, tasks, names)
        np.testing.assert_allclose(one.skills, oc.skills_.reindex(workers).to_numpy(float), atol=TOL)
        if golden:
            true = pd.Series(golden, dtype=object)
            true.index.name = "task"
            dsg = DawidSkene(n_iter=100).fit(frame, true_labels=true)
            pinned = {tasks.index(t): names.index(v) for t, v in golden.items()}
            assert_same(dawid_skene(answers, golden=pinned), dsg.probas_, dsg.labels_, tasks, names)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("overlap", [3, 5])
def test_simulated_crowds_match_crowdkit(seed: int, overlap: int) -> None:
    frame, truth = simulated_crowd(seed, overlap=overlap)
    golden = {t: truth[t] for t in list(truth)[:20]}
    check_all(frame, golden)


def test_ties_everywhere() -> None:
    rows = []
    for i in range(30):  # every task a 1-1 or 1-1-1 split
        labels = ["a", "b"] if i % 2 else ["a", "b", "c"]
        for j, label in enumerate(labels):
            rows.append((f"t{i}", f"w{(i + j) % 7}", label))
    check_all(pd.DataFrame(rows, columns=["task", "worker", "label"]))


def test_missing_workers_and_single_answer_tasks() -> None:
    rng = random.Random(7)
    rows = []
    for i in range(80):
        n = 1 if i % 3 == 0 else rng.choice([2, 3, 4])  # a third of the tasks have one answer
        for w in rng.sample(range(40), n):  # 40 workers, most seen a few times, some once
            rows.append((f"t{i}", f"w{w}", rng.choice(["x", "y", "z", "x", "x"])))
    rows.append(("t999", "lonely", "y"))  # a worker with one answer on a task nobody else saw
    frame = pd.DataFrame(rows, columns=["task", "worker", "label"])
    check_all(frame, golden={"t1": "x", "t2": "y", "t999": "y"})


def test_all_single_answers() -> None:
    frame = pd.DataFrame([(f"t{i}", f"w{i % 4}", "ab"[i % 2]) for i in range(12)], columns=["task", "worker", "label"])
    check_all(frame)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_masks_match_crowdkit(n: int) -> None:
    rng = np.random.default_rng(n)
    base = np.zeros((24, 32), bool)
    base[4:18, 6:25] = True
    masks = []
    for i in range(n):
        m = base.copy()
        m ^= rng.random(base.shape) < 0.05 * (i % 3)  # some careful, some sloppy workers
        if i == 2:
            m[:, :10] = False  # one who missed a part
        masks.append(m)
    frame = pd.DataFrame({"task": [0] * n, "worker": list(range(n)), "segmentation": masks})
    stack = np.stack(masks)
    assert np.array_equal(mask_em(stack), SegmentationEM().fit_predict(frame).iloc[0])
    assert np.array_equal(mask_vote(stack), SegmentationMajorityVote().fit_predict(frame).iloc[0])
    weights = rng.uniform(0.1, 1.0, n)
    skills = pd.Series(weights, index=list(range(n)))
    weighted = SegmentationMajorityVote().fit_predict(frame, skills=skills).iloc[0]
    assert np.array_equal(mask_vote(stack, weights), weighted)


def test_empty_masks_and_no_answers() -> None:
    assert not mask_em(np.zeros((3, 4, 5), bool)).any()
    empty = Answers.of([], [], [], 2)
    assert dawid_skene(empty).probas.shape == (0, 2)
    assert majority_vote(empty).probas.shape == (0, 2)


def test_bad_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        Answers.of([0, 1], [0], [0, 1])
    with pytest.raises(ValueError, match="non-negative"):
        Answers.of([0], [-1], [0])
    with pytest.raises(ValueError, match="out of range"):
        Answers.of([0], [0], [3], n_labels=2)


def test_prior_keeps_a_small_project_from_certainty() -> None:
    """Ten workers of accuracy 0.8, sixty tasks, three answers each: a 2-of-3 vote is right about
    80 % of the time. Maximum likelihood reads most of them as near-certain; the prior does not."""
    rng = random.Random(11)
    rows = []
    for i in range(60):
        truth = "ab"[i % 2]
        for w in rng.sample(range(10), 3):
            rows.append((f"t{i}", f"w{w}", truth if rng.random() < 0.8 else "ba"[i % 2]))
    frame = pd.DataFrame(rows, columns=["task", "worker", "label"])
    answers, _tasks, _names = encode(frame)
    split = answers.counts().max(axis=1) == 2
    assert split.sum() >= 10
    raw = dawid_skene(answers)
    smooth = dawid_skene(answers, prior=2.0)
    assert raw.confidence[split].mean() > 0.9 and raw.confidence[split].max() > 0.999
    assert abs(smooth.confidence[split].mean() - 0.8) < 0.1
    assert smooth.confidence[split].max() < 0.995
    assert (smooth.labels == raw.labels).mean() >= 0.9
