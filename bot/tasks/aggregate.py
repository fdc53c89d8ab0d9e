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

import numpy as np
import structlog
from sqlalchemy import select
from sqlmodel import Session, col

from bot.autoseg import rle
from bot.tasks.models import PIN_MASK, Answer, AnswerStatus, Project, ProjectType, Task, TaskKind
from bot.tasks.projects import answer_values
from bot.tasks.quality_math import K, best, posterior, vote_weight, weight_accuracy

log = structlog.get_logger("crowdpin.quality")

METHODS = ("majority_vote", "weighted_vote", "dawid_skene", "auto")
# Dawid–Skene estimates a confusion matrix per worker; with fewer answers per worker than this
# on average the matrices are mostly prior and the weighted vote is the safer choice.
DS_MIN_ANSWERS_PER_WORKER = 5


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


@dataclass(slots=True)
class _Data:
    project: Project
    tasks: list[tuple[int, str, str | None]]  # (id, external id, task mask) of normal tasks
    votes: list[_Vote]  # accepted answers on normal tasks
    golden: list[tuple[int, int, str, str]]  # (task, worker, value, truth) on golden/training tasks

    @property
    def labels(self) -> list[str]:
        return answer_values(self.project)


def _load(session: Session, project_id: int) -> _Data:
    project = session.get(Project, project_id)
    if project is None:
        raise AggregationError(f"no project with id {project_id}")
    tasks = [
        (int(row[0]), str(row[1]), row[2])
        for row in session.execute(
            select(col(Task.id), col(Task.external_id), col(Task.mask_rle))
            .where(col(Task.project_id) == project_id, col(Task.kind) == TaskKind.NORMAL.value)
            .order_by(col(Task.id))
        )
    ]
    votes = [
        _Vote(int(row[0]), int(row[1]), str(row[2]), row[3])
        for row in session.execute(
            select(col(Answer.task_id), col(Answer.worker_id), col(Answer.value), col(Answer.mask_rle))
            .join(Task, col(Task.id) == col(Answer.task_id))
            .where(
                col(Answer.project_id) == project_id,
                col(Answer.status) == AnswerStatus.ACCEPTED.value,
                col(Task.kind) == TaskKind.NORMAL.value,
            )
            .order_by(col(Answer.id))
        )
    ]
    golden = [
        (int(row[0]), int(row[1]), str(row[2]), str(row[3]))
        for row in session.execute(
            select(col(Answer.task_id), col(Answer.worker_id), col(Answer.value), col(Task.golden))
            .join(Task, col(Task.id) == col(Answer.task_id))
            .where(col(Answer.project_id) == project_id, col(Task.kind) == TaskKind.GOLDEN.value, col(Task.golden).is_not(None))
            .order_by(col(Answer.id))
        )
    ]
    return _Data(project, tasks, votes, golden)


def majority(values: Sequence[str], order: Sequence[str] = ()) -> tuple[str, float]:
    """Plain majority of ``values``: (label, share of votes); ties go to the label first in ``order``."""
    if not values:
        raise AggregationError("no votes")
    counts = Counter(values)
    n = len(values)
    return best({v: c / n for v, c in counts.items()}, list(order) or list(dict.fromkeys(values)))


def _by_task(votes: list[_Vote]) -> dict[int, list[_Vote]]:
    grouped: dict[int, list[_Vote]] = defaultdict(list)
    for vote in votes:
        grouped[vote.task_id].append(vote)
    return grouped


# --- label methods: each returns {task_id: (label, confidence)} for tasks with votes -----------

Labels = dict[int, tuple[str, float]]


def _majority_labels(data: _Data) -> Labels:
    return {task_id: majority([v.value for v in mine], data.labels) for task_id, mine in _by_task(data.votes).items()}


def golden_accuracy(data: _Data) -> dict[int, float]:
    """Golden accuracy (shrunk for weighting, see ``quality_math.WEIGHT_K``) of every worker with golden answers."""
    correct: Counter[int] = Counter()
    total: Counter[int] = Counter()
    for _task, worker, value, truth in data.golden:
        total[worker] += 1
        correct[worker] += value == truth
    return {worker: weight_accuracy(correct[worker], total[worker]) for worker in total}


def worker_accuracy(data: _Data) -> dict[int, float]:
    """Golden accuracy where known; for the others, crowd-kit's Wawa skill (agreement with the
    majority), which needs no golden tasks at all."""
    accuracy = golden_accuracy(data)
    unknown = {v.worker_id for v in data.votes} - accuracy.keys()
    if unknown and data.votes:
        import pandas as pd
        from crowdkit.aggregation import Wawa

        frame = pd.DataFrame(
            {"task": [v.task_id for v in data.votes], "worker": [v.worker_id for v in data.votes], "label": [v.value for v in data.votes]}
        )
        skills = Wawa().fit(frame).skills_
        for worker in unknown:
            skill = skills.get(worker)
            accuracy[worker] = float(skill) if skill is not None and skill == skill else K
    return accuracy


def _weighted_labels(data: _Data) -> Labels:
    accuracy = worker_accuracy(data)
    n = len(data.labels) or len({v.value for v in data.votes})
    out: Labels = {}
    for task_id, mine in _by_task(data.votes).items():
        probs = posterior(((v.value, vote_weight(accuracy.get(v.worker_id, K), n)) for v in mine), data.labels)
        out[task_id] = best(probs, data.labels)
    return out


def _dawid_skene_labels(data: _Data) -> Labels:
    """crowd-kit's DawidSkene over normal and golden answers; golden truths anchor the confusion
    matrices (``true_labels``), so a spammer's matrix is learnt from facts, not from the crowd."""
    if not data.votes:
        return {}
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    rows = [(v.task_id, v.worker_id, v.value) for v in data.votes]
    rows += [(task, worker, value) for task, worker, value, _truth in data.golden]
    frame = pd.DataFrame(rows, columns=["task", "worker", "label"])
    truths = {task: truth for task, _w, _v, truth in data.golden}
    observed = set(frame["label"])
    true_labels = pd.Series({task: truth for task, truth in truths.items() if truth in observed}, dtype=object)
    true_labels.index.name = "task"
    model = DawidSkene(n_iter=100)
    model.fit(frame, true_labels=true_labels if len(true_labels) else None)
    probs = model.probas_
    out: Labels = {}
    wanted = {v.task_id for v in data.votes}
    for task_id, row in probs.iterrows():
        if task_id not in wanted:
            continue
        clean = {str(label): float(p) for label, p in row.items() if p == p}
        if clean:
            out[int(task_id)] = best(clean, data.labels)
    return out


# --- masks --------------------------------------------------------------------------------------


def _decode(mask_rle: str | None) -> np.ndarray | None:
    if not mask_rle:
        return None
    try:
        return rle.decode(json.loads(mask_rle))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("aggregate.bad_mask", error=str(exc))
        return None


def _mask_result(data: _Data, method: str, mine: list[_Vote], weights: dict[int, float] | None) -> tuple[str | None, float]:
    """Per-pixel aggregation of the kept masks of one task; returns (RLE JSON, mean IoU with it)."""
    decoded = [(v.worker_id, m) for v in mine if v.value == PIN_MASK and (m := _decode(v.mask_rle)) is not None]
    if not decoded:
        return None, 0.0
    shape = Counter(m.shape for _, m in decoded).most_common(1)[0][0]
    decoded = [(w, m) for w, m in decoded if m.shape == shape]  # a mask of another size is damaged
    stack = np.stack([m for _, m in decoded]).astype(np.float64)
    if method == "dawid_skene" and len(decoded) >= 2:
        import pandas as pd
        from crowdkit.aggregation import SegmentationEM

        frame = pd.DataFrame({"task": [0] * len(decoded), "worker": [w for w, _ in decoded], "segmentation": [m for _, m in decoded]})
        result = np.asarray(SegmentationEM().fit_predict(frame).iloc[0], dtype=bool)
    else:
        # crowd-kit's SegmentationMajorityVote rule, without pandas: a pixel is in when the
        # (weighted) yes votes are at least half of the weight.
        w = np.array([(weights or {}).get(worker, 1.0) for worker, _ in decoded], dtype=np.float64)
        if w.sum() <= 0:
            w = np.ones_like(w)
        result = np.tensordot(w, stack, axes=1) * 2 >= w.sum()
    ious = [rle.mask_iou(m, result) for _, m in decoded]
    return json.dumps(rle.encode(result), separators=(",", ":")), float(np.mean(ious))


# --- entry point --------------------------------------------------------------------------------


def resolve_method(project: Project, method: str, n_votes: int, n_workers: int) -> str:
    """What ``auto`` means for this project and amount of data."""
    if method not in METHODS:
        raise AggregationError(f"unknown aggregation method {method!r}; use one of: {', '.join(METHODS)}")
    if method != "auto":
        return method
    if project.type == ProjectType.CLASSIFY:
        enough = n_workers >= 3 and n_votes >= DS_MIN_ANSWERS_PER_WORKER * n_workers
        return "dawid_skene" if enough else "weighted_vote"
    return "majority_vote"


def aggregate_project(session: Session, project_id: int, method: str = "auto") -> Iterator[TaskResult]:
    """One :class:`TaskResult` per normal task of the project, in task id order.

    Tasks without accepted answers are included with ``label=None`` and confidence 0, so an
    export always has every task of the project. The data is read before this returns (errors
    surface at the call, not half-way through an export); results are then produced lazily.
    """
    if method not in METHODS:
        raise AggregationError(f"unknown aggregation method {method!r}; use one of: {', '.join(METHODS)}")
    data = _load(session, project_id)
    chosen = resolve_method(data.project, method, len(data.votes), len({v.worker_id for v in data.votes}))
    return _results(data, chosen)


def _results(data: _Data, method: str) -> Iterator[TaskResult]:
    if method == "majority_vote":
        labels = _majority_labels(data)
    elif method == "weighted_vote":
        labels = _weighted_labels(data)
    else:
        labels = _dawid_skene_labels(data)
    weights = None
    if data.project.type == ProjectType.MAGIC_PIN and method == "weighted_vote":
        weights = {w: vote_weight(a, 2) for w, a in worker_accuracy(data).items()}
    grouped = _by_task(data.votes)
    for task_id, external_id, task_mask in data.tasks:
        mine = grouped.get(task_id, [])
        if not mine or task_id not in labels:
            yield TaskResult(task_id, external_id, None, 0.0, len(mine), method)
            continue
        label, confidence = labels[task_id]
        mask: str | None = None
        if data.project.type == ProjectType.CONFIRM_MASK and label == "yes":
            mask = task_mask
        elif data.project.type == ProjectType.MAGIC_PIN and label == PIN_MASK:
            mask, agreement = _mask_result(data, method, mine, weights)
            confidence *= agreement
        yield TaskResult(task_id, external_id, label, float(confidence), len(mine), method, mask)
