"""Aggregation of accepted answers into one result per task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.tasks.aggregate import AggregationError, aggregate_project, majority
from bot.tasks.models import Answer, Task
from tests.quality.helpers import make_project, make_workers, put_answer


def _tasks(db: Database, project_id: int) -> list[Task]:
    with db.session() as s:
        return list(s.execute(select(Task).where(Task.project_id == project_id).order_by(Task.id)).scalars())


def test_majority_helper_breaks_ties_by_label_order() -> None:
    assert majority(["b", "a", "b"]) == ("b", pytest.approx(2 / 3))
    assert majority(["b", "a"], order=["a", "b"])[0] == "a"
    with pytest.raises(AggregationError):
        majority([])


def test_majority_vote_rows(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=3, golden=1)
    w = make_workers(db, 3)
    tasks = _tasks(db, project.id)
    with db.session() as s:
        for worker_id, value in zip(w, ["a", "a", "b"]):
            put_answer(s, tasks[0], worker_id, value)
        for worker_id, value in zip(w, ["c", "b", "b"]):
            put_answer(s, tasks[1], worker_id, value)
        put_answer(s, tasks[3], w[0], "a")  # golden: not part of the results
    with db.session() as s:
        rows = list(aggregate_project(s, project.id, "majority_vote"))
    assert [r.external_id for r in rows] == ["t0", "t1", "t2"]
    assert (rows[0].label, rows[0].n_answers, rows[0].method) == ("a", 3, "majority_vote")
    assert rows[0].confidence == pytest.approx(2 / 3)
    assert rows[1].label == "b"
    assert (rows[2].label, rows[2].confidence, rows[2].n_answers) == (None, 0.0, 0)


def test_rejected_answers_do_not_count(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=1)
    w = make_workers(db, 3)
    (task,) = _tasks(db, project.id)
    with db.session() as s:
        put_answer(s, task, w[0], "a")
        put_answer(s, task, w[1], "b", status="rejected")
        put_answer(s, task, w[2], "b", status="rejected")
    with db.session() as s:
        (row,) = aggregate_project(s, project.id, "majority_vote")
    assert (row.label, row.n_answers, row.confidence) == ("a", 1, 1.0)


def test_unknown_method_and_project_are_clear_errors(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=1)
    with db.session() as s:
        with pytest.raises(AggregationError, match="unknown aggregation method"):
            aggregate_project(s, project.id, "median")
        with pytest.raises(AggregationError, match="no project"):
            aggregate_project(s, 999, "majority_vote")


def _crowd(db: Database, project_id: int, tasks: list[Task], workers: list[int], answer) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        for task in tasks:
            for worker_id in workers:
                value = answer(task, worker_id)
                if value is not None:
                    put_answer(s, task, worker_id, value)


def test_weighted_vote_and_dawid_skene_overrule_a_majority_of_spammers(db: Database, tmp_path: Path) -> None:
    """Two reliable workers (proved on golden tasks) outvote three who always say "c"."""
    import random

    labels = ("a", "b", "c")
    project = make_project(db, tmp_path / "imgs", count=24, golden=12)
    w = make_workers(db, 5)
    _good, spam = w[:2], w[2:]
    tasks = _tasks(db, project.id)
    normal = [t for t in tasks if t.kind == "normal"]
    rng = random.Random(3)
    truth = {t.id: labels[i % 3] for i, t in enumerate(normal)}
    truth.update({t.id: t.golden for t in tasks if t.kind == "golden"})

    def answer(task: Task, worker_id: int) -> str:
        if worker_id in spam:
            return "c"
        return truth[task.id] if rng.random() < 0.95 else rng.choice(labels)

    _crowd(db, project.id, tasks, w, answer)
    with db.session() as s:
        mv = {r.task_id: r for r in aggregate_project(s, project.id, "majority_vote")}
        wv = {r.task_id: r for r in aggregate_project(s, project.id, "weighted_vote")}
        ds = {r.task_id: r for r in aggregate_project(s, project.id, "dawid_skene")}
        auto = list(aggregate_project(s, project.id, "auto"))

    def acc(rows: dict) -> float:  # type: ignore[type-arg]
        return sum(rows[t].label == truth[t] for t in rows) / len(rows)

    assert acc(mv) < 0.5  # the spammers win every plain vote that is not "c"
    assert acc(wv) >= 0.9
    assert acc(ds) >= 0.9
    assert {r.method for r in auto} == {"dawid_skene"}  # 5 workers x 36 answers: enough for DS
    assert all(0.0 <= r.confidence <= 1.0 for r in ds.values())
    assert all(r.method == "weighted_vote" for r in wv.values())


def test_auto_uses_weighted_vote_when_data_is_thin(db: Database, tmp_path: Path) -> None:
    project = make_project(db, tmp_path / "imgs", count=2)
    w = make_workers(db, 3)
    tasks = _tasks(db, project.id)
    _crowd(db, project.id, tasks, w, lambda task, worker: "a")
    with db.session() as s:
        rows = list(aggregate_project(s, project.id, "auto"))
    assert [r.method for r in rows] == ["weighted_vote", "weighted_vote"]
    assert all(r.label == "a" and r.confidence > 0.5 for r in rows)


def test_confirm_mask_vote_keeps_the_task_mask(db: Database, tmp_path: Path) -> None:
    import numpy as np

    from bot.autoseg import rle

    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:4] = True
    encoded = json.dumps(rle.encode(mask))
    project = make_project(db, tmp_path / "imgs", count=2, type="confirm-mask", task_masks=[encoded, encoded])
    w = make_workers(db, 3)
    tasks = _tasks(db, project.id)
    votes = {tasks[0].id: ["yes", "yes", "no"], tasks[1].id: ["no", "no", "yes"]}
    _crowd(db, project.id, tasks, w, lambda task, worker: votes[task.id][w.index(worker)])
    with db.session() as s:
        rows = list(aggregate_project(s, project.id, "auto"))
        shares = list(aggregate_project(s, project.id, "majority_vote"))
    # auto: the weighted vote, whose confidence is a probability; a 2-of-3 vote is not a certainty
    assert [(r.label, r.method) for r in rows] == [("yes", "weighted_vote"), ("no", "weighted_vote")]
    assert rows[0].mask_rle == encoded and rows[1].mask_rle is None
    assert all(0.5 < r.confidence < 0.95 for r in rows)
    assert [(r.label, r.confidence) for r in shares] == [("yes", pytest.approx(2 / 3)), ("no", pytest.approx(2 / 3))]


@pytest.mark.parametrize("method", ["auto", "weighted_vote", "dawid_skene"])
def test_magic_pin_masks_are_voted_per_pixel(db: Database, tmp_path: Path, method: str) -> None:
    import numpy as np

    from bot.autoseg import rle

    base = np.zeros((10, 12), bool)
    base[2:8, 3:9] = True
    grown = base.copy()
    grown[1, 3:9] = True  # one worker drew a row too many
    shrunk = base.copy()
    shrunk[7, 3:9] = False  # another a row too few
    enc = lambda m: json.dumps(rle.encode(m))  # noqa: E731
    project = make_project(db, tmp_path / "imgs", count=2, type="magic-pin")
    w = make_workers(db, 4)
    tasks = _tasks(db, project.id)
    with db.session() as s:
        put_answer(s, tasks[0], w[0], "mask", mask_rle=enc(base))
        put_answer(s, tasks[0], w[1], "mask", mask_rle=enc(grown))
        put_answer(s, tasks[0], w[2], "mask", mask_rle=enc(shrunk))
        put_answer(s, tasks[0], w[3], "mask", mask_rle="{not json")  # damaged: ignored, not fatal
        for worker_id in w[:3]:
            put_answer(s, tasks[1], worker_id, "none")
    with db.session() as s:
        first, second = aggregate_project(s, project.id, method)
    assert first.label == "mask" and first.mask_rle is not None
    assert np.array_equal(rle.decode(json.loads(first.mask_rle)), base)
    assert 0.5 < first.confidence < 1.0  # agreement on the pixels lowers it below the vote share
    assert (second.label, second.mask_rle) == ("none", None)


def _small_crowd(db: Database, tmp_path: Path) -> tuple[int, list[Task]]:
    project = make_project(db, tmp_path / "imgs", count=6)
    w = make_workers(db, 3)
    tasks = _tasks(db, project.id)
    votes = ["a", "a", "b", "b", "c", "c"]
    _crowd(db, project.id, tasks, w, lambda task, worker: votes[tasks.index(task)] if worker != w[2] else "a")
    return project.id, tasks  # type: ignore[return-value]


def test_crowdkit_method_by_name(db: Database, tmp_path: Path) -> None:
    pid, _ = _small_crowd(db, tmp_path)
    with db.session() as s:
        ours = list(aggregate_project(s, pid, "majority_vote"))
        theirs = list(aggregate_project(s, pid, "crowdkit:MajorityVote"))
        glad = list(aggregate_project(s, pid, "crowdkit:GLAD"))
    assert [(r.label, round(r.confidence, 9)) for r in theirs] == [(r.label, round(r.confidence, 9)) for r in ours]
    assert {r.method for r in theirs} == {"crowdkit:MajorityVote"}
    assert {r.method for r in glad} == {"crowdkit:GLAD"} and all(r.label in "abc" and 0 < r.confidence <= 1 for r in glad)


def test_crowdkit_errors_are_clear(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    pid, _ = _small_crowd(db, tmp_path)
    with db.session() as s:
        with pytest.raises(AggregationError, match=r"no classification aggregator 'Nope'.*GLAD"):
            aggregate_project(s, pid, "crowdkit:Nope")
        with pytest.raises(AggregationError, match="no classification aggregator 'SegmentationEM'"):
            aggregate_project(s, pid, "crowdkit:SegmentationEM")
        with pytest.raises(AggregationError, match="unknown aggregation method"):
            aggregate_project(s, pid, "crowdkit:not a name")
        monkeypatch.setitem(sys.modules, "crowdkit", None)  # as on an install without the extra
        with pytest.raises(AggregationError, match=r"pip install 'crowdpin\[crowdkit\]'"):
            aggregate_project(s, pid, "crowdkit:GLAD")


def test_aggregation_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from bot.config import AGGREGATION_METHODS, AggregationSettings
    from bot.tasks.aggregate import METHODS

    assert set(AGGREGATION_METHODS) == set(METHODS)
    monkeypatch.delenv("AGGREGATION", raising=False)
    assert AggregationSettings().aggregation == "auto"
    monkeypatch.setenv("AGGREGATION", "crowdkit:GLAD")
    assert AggregationSettings().aggregation == "crowdkit:GLAD"
    for bad in ("median", "crowdkit:", "crowdkit:GL AD", "sklearn:GLAD"):
        monkeypatch.setenv("AGGREGATION", bad)
        with pytest.raises(ValidationError, match="AGGREGATION must be one of"):
            AggregationSettings()


def test_a_demo_sized_project_never_calls_a_split_vote_certain(db: Database, tmp_path: Path) -> None:
    """The sandbox demo's shape: three 90 %-accurate workers, twelve photos, three labels. A
    2-of-3 vote is right about 95 % of the time with such workers: never 1.00."""
    import random

    labels = ("a", "b", "c")
    project = make_project(db, tmp_path / "imgs", count=12, labels=labels)
    w = make_workers(db, 3)
    tasks = _tasks(db, project.id)
    truth = {t.id: labels[i % 3] for i, t in enumerate(tasks)}
    rng = random.Random(1)
    split_task = tasks[5].id

    def answer(task: Task, worker_id: int) -> str:
        if task.id == split_task:  # one wrong majority for sure
            return truth[task.id] if worker_id == w[0] else labels[(labels.index(truth[task.id]) + 1) % 3]
        return truth[task.id] if rng.random() < 0.9 else rng.choice(labels)

    _crowd(db, project.id, tasks, w, answer)
    with db.session() as s:
        rows = list(aggregate_project(s, project.id, "auto"))
    assert {r.method for r in rows} == {"weighted_vote"}  # 36 answers: too few for confusion matrices
    split = [r for r in rows if r.task_id == split_task]
    assert split[0].label != truth[split_task] and 0.6 < split[0].confidence < 0.99
    with db.session() as s:
        votes = {t.id: [a.value for a in s.execute(select(Answer).where(Answer.task_id == t.id)).scalars()] for t in tasks}
    for r in rows:
        if len(set(votes[r.task_id])) > 1:
            assert r.confidence < 0.99, (votes[r.task_id], r.confidence)
