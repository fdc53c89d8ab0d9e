"""Calibration: the ECE and reliability arithmetic, the temperature fit, and that exported
confidence is calibrated where the model is right and tempered where it is not."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from bot.db import Database
from bot.tasks import aggregate, calibration
from bot.tasks.aggregate import CALIBRATION_MIN_GOLDEN, aggregate_project, golden_reliability
from bot.tasks.models import Task
from tests.quality.helpers import make_project, make_workers, put_answer


def test_ece_of_known_tables() -> None:
    # 10 labels at 0.85 of which 8 right (0.8): |0.85 - 0.8| = 0.05; 10 at 0.25, 5 right: 0.25
    conf = [0.85] * 10 + [0.25] * 10
    right = [True] * 8 + [False] * 2 + [True] * 5 + [False] * 5
    assert calibration.ece(conf, right) == pytest.approx((10 * 0.05 + 10 * 0.25) / 20)
    table = calibration.reliability(conf, right)
    assert [b.n for b in table] == [0, 0, 10, 0, 0, 0, 0, 0, 10, 0]
    assert table[8].accuracy == pytest.approx(0.8) and table[8].confidence == pytest.approx(0.85)
    assert np.isnan(table[0].accuracy)
    assert calibration.reliability([1.0], [True])[-1].n == 1  # the last bin is closed
    assert calibration.ece([], []) == 0.0


def test_ece_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        calibration.ece([0.5, 0.6], [True])
    with pytest.raises(ValueError, match="within"):
        calibration.ece([1.2], [True])
    with pytest.raises(ValueError, match="within"):
        calibration.ece([float("nan")], [True])


def test_calibrated_draws_have_small_ece_and_overconfident_ones_do_not() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 20000)
    right = rng.random(20000) < conf
    assert calibration.ece(conf, right) < 0.01
    assert calibration.ece(np.minimum(conf + 0.15, 1.0), right) > 0.1


@pytest.mark.parametrize("true_t", [0.7, 1.0, 3.0])
def test_temperature_fit_recovers_the_temperature(true_t: float) -> None:
    rng = np.random.default_rng(5)
    scores = rng.normal(0, 3, size=(4000, 3))
    p = calibration.softmax(scores, true_t)
    truth = np.array([rng.choice(3, p=row) for row in p])
    assert calibration.fit_temperature(scores, truth) == pytest.approx(true_t, rel=0.1)
    assert calibration.fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0
    with pytest.raises(ValueError):
        calibration.fit_temperature(scores[:3], truth[:2])


def test_the_prior_on_temperature_holds_with_few_tasks() -> None:
    """Three confidently wrong golden tasks must not make every label a coin flip."""
    scores = np.array([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    t = calibration.fit_temperature(scores, np.array([1, 1, 0]))
    assert 1.0 < t < 20.0
    assert calibration.softmax(np.array([[5.0, 0.0]]), t).max() > 0.55


def _tasks(db: Database, project_id: int) -> list[Task]:
    with db.session() as s:
        return list(s.execute(select(Task).where(Task.project_id == project_id).order_by(Task.id)).scalars())


def test_correlated_crowd_is_tempered_by_golden_tasks(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crowd whose workers share mistakes on hard photos: a third of the tasks fool most of
    them. Independence would make the wrong majorities near-certain; the temperature fitted on
    golden tasks brings the exported confidence down to what the labels are worth."""
    labels = ("a", "b", "c")
    project = make_project(db, tmp_path / "imgs", count=240, golden=80, labels=labels)
    w = make_workers(db, 8)
    tasks = _tasks(db, project.id)
    rng = random.Random(4)
    truth = {t.id: (t.golden or labels[i % 3]) for i, t in enumerate(tasks)}
    with db.session() as s:
        for t in tasks:
            hard = rng.random() < 0.3
            lure = rng.choice([x for x in labels if x != truth[t.id]])
            for worker_id in rng.sample(w, 5):
                if hard:
                    value = lure if rng.random() < 0.6 else truth[t.id]
                else:
                    value = truth[t.id] if rng.random() < 0.9 else rng.choice(labels)
                put_answer(s, t, worker_id, value)
    with db.session() as s:
        rows = list(aggregate_project(s, project.id, "dawid_skene"))
        method, g_conf, g_ok = golden_reliability(s, project.id, "dawid_skene")
        monkeypatch.setattr(aggregate, "CALIBRATION_MIN_GOLDEN", 10_000)  # the same model, untempered
        raw = list(aggregate_project(s, project.id, "dawid_skene"))
    conf = [r.confidence for r in rows]
    right = [r.label == truth[r.task_id] for r in rows]
    assert [r.label for r in raw] == [r.label for r in rows]  # a temperature never changes a label
    assert method == "dawid_skene" and len(g_conf) == len(g_ok) == 80
    raw_ece = calibration.ece([r.confidence for r in raw], right)
    assert raw_ece > 0.1
    assert calibration.ece(conf, right) < min(0.1, raw_ece / 2)
    assert calibration.ece(g_conf, g_ok) < raw_ece  # the report shows the tempered curve too


def test_no_calibration_below_the_golden_minimum(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=6, golden=CALIBRATION_MIN_GOLDEN - 1)
    w = make_workers(db, 3)
    with db.session() as s:
        for t in _tasks(db, project.id):
            for worker_id in w:
                put_answer(s, t, worker_id, t.golden or "a")
    with db.session() as s:
        assert golden_reliability(s, project.id, "weighted_vote") == ("weighted_vote", [], [])
        assert golden_reliability(s, project.id, "majority_vote") == ("majority_vote", [], [])
