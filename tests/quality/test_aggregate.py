"""Aggregation of accepted answers into one result per task."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.tasks.aggregate import AggregationError, aggregate_project, majority
from bot.tasks.models import Task

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
