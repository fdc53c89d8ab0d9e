"""Turning the accepted answers of a project into one result per task, for export and payment.

Methods:

* ``majority_vote`` — the most frequent answer; confidence is its share of the votes.
* ``weighted_vote`` — votes weighted by each worker's accuracy: golden accuracy (smoothed) when
  the worker answered golden tasks, otherwise crowd-kit's ``Wawa`` (agreement with the majority).
* ``dawid_skene`` — crowd-kit's ``DawidSkene`` EM (per-worker confusion matrices); confidence is
  the posterior of the chosen label.
* ``auto`` — Dawid–Skene for classify projects when there are enough answers to estimate
  confusion matrices, else the weighted vote; the majority of yes/no for confirm-mask; a per-pixel
  vote over kept masks for magic-pin.

Only normal tasks are aggregated (golden and training tasks have a known answer already), and
only accepted answers count, so rejecting a cheater's answers changes the results.

crowd-kit and pandas are imported inside the functions that need them: they take about a second
to import and the bot never aggregates on its start-up path.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from bot.tasks.models import Answer, AnswerStatus, Project, ProjectType, Task, TaskKind

METHODS = ("majority_vote", "weighted_vote", "dawid_skene", "auto")
# Dawid–Skene estimates a confusion matrix per worker; with fewer answers per worker than this
# on average the matrices are mostly prior and the weighted vote is the safer choice.
DS_MIN_ANSWERS_PER_WORKER = 5
SMOOTHING_K = 0.5  # same prior as the golden accuracy in bot.tasks.quality
PIN_NONE = "none"
PIN_MASK = "mask"


class AggregationError(ValueError):
    """An unknown method or project; raised before any result is produced."""


@dataclass(slots=True)
class TaskResult:
    """One row of the results export: which label, how sure, from how many answers, by what method."""

    task_id: int
    external_id: str
    label: str | None
    confidence: float
    n_answers: int
    method: str
    mask_rle: str | None = None


@dataclass(frozen=True, slots=True)
class _Vote:
    task_id: int
    worker_id: int
    value: str
    mask_rle: str | None


def _load(session: Session, project_id: int) -> tuple[Project, list[tuple[int, str, str | None]], list[_Vote]]:
    project = session.get(Project, project_id)
    if project is None:
        raise AggregationError(f"no project with id {project_id}")
    tasks = [
        (int(row[0]), str(row[1]), row[2])
        for row in session.execute(
            select(Task.id, Task.external_id, Task.mask_rle)
            .where(Task.project_id == project_id, Task.kind == TaskKind.NORMAL.value)
            .order_by(Task.id)
        )
    ]
    votes = [
        _Vote(int(row[0]), int(row[1]), str(row[2]), row[3])
        for row in session.execute(
            select(Answer.task_id, Answer.worker_id, Answer.value, Answer.mask_rle)
            .join(Task, Task.id == Answer.task_id)  # type: ignore[arg-type]
            .where(
                Answer.project_id == project_id,
                Answer.status == AnswerStatus.ACCEPTED.value,
                Task.kind == TaskKind.NORMAL.value,
            )
            .order_by(Answer.id)
        )
    ]
    return project, tasks, votes


def _pick(weights: dict[str, float], order: Sequence[str]) -> tuple[str, float]:
    """The heaviest value and its share; ties go to the value first in ``order`` (stable export)."""
    total = sum(weights.values())
    rank = {value: i for i, value in enumerate(order)}
    best = min(weights, key=lambda v: (-weights[v], rank.get(v, len(rank)), v))
    return best, (weights[best] / total if total > 0 else 0.0)


def majority(values: Sequence[str], order: Sequence[str] = ()) -> tuple[str, float]:
    """Plain majority of ``values``: (label, share of votes)."""
    if not values:
        raise AggregationError("no votes")
    return _pick({v: float(n) for v, n in Counter(values).items()}, list(order) or list(dict.fromkeys(values)))


def _label_order(project: Project) -> list[str]:
    if project.type == ProjectType.CLASSIFY:
        return list(json.loads(project.labels_json or "[]"))
    if project.type == ProjectType.CONFIRM_MASK:
        return ["yes", "no"]
    return [PIN_MASK, PIN_NONE]


def _by_task(votes: list[_Vote]) -> dict[int, list[_Vote]]:
    grouped: dict[int, list[_Vote]] = defaultdict(list)
    for vote in votes:
        grouped[vote.task_id].append(vote)
    return grouped


def _majority_results(
    project: Project, tasks: list[tuple[int, str, str | None]], votes: list[_Vote], method: str
) -> Iterator[TaskResult]:
    order = _label_order(project)
    grouped = _by_task(votes)
    for task_id, external_id, task_mask in tasks:
        mine = grouped.get(task_id, [])
        if not mine:
            yield TaskResult(task_id, external_id, None, 0.0, 0, method)
            continue
        label, share = majority([v.value for v in mine], order)
        yield TaskResult(task_id, external_id, label, share, len(mine), method, _result_mask(project, label, task_mask))


def _result_mask(project: Project, label: str, task_mask: str | None) -> str | None:
    """A confirmed mask is the task's own mask; a rejected one has none."""
    if project.type == ProjectType.CONFIRM_MASK and label == "yes":
        return task_mask
    return None


def aggregate_project(session: Session, project_id: int, method: str = "auto") -> Iterator[TaskResult]:
    """One :class:`TaskResult` per normal task of the project, in task id order.

    Tasks without accepted answers are included with ``label=None`` and confidence 0, so an
    export always has every task of the project.
    """
    if method not in METHODS:
        raise AggregationError(f"unknown aggregation method {method!r}; use one of: {', '.join(METHODS)}")
    project, tasks, votes = _load(session, project_id)
    return _majority_results(project, tasks, votes, "majority_vote")
