"""Turning the accepted answers of a project into one result per task, for export and payment.

Methods:

* ``majority_vote`` — the most frequent answer; confidence is its share of the votes (a share,
  not a probability: three random clickers who agree get 1.00).
* ``weighted_vote`` — votes weighted by log-odds of each worker's accuracy: golden accuracy
  (smoothed) when the worker answered golden tasks, otherwise agreement with the majority
  (Wawa, smoothed the same way).
* ``dawid_skene`` — Dawid–Skene EM (per-worker confusion matrices) with a Dirichlet prior
  toward the crowd's average worker, golden truths pinned; confidence is the posterior.
* ``auto`` — Dawid–Skene for classify projects when there are enough answers to estimate
  confusion matrices, else the weighted vote (also for confirm-mask and magic-pin, with a
  per-pixel vote over kept masks).
* ``crowdkit:<Class>`` — any crowd-kit classification aggregator by name, for operators who
  installed the optional extra ``crowdpin[crowdkit]``.

The weighted vote and Dawid–Skene export *calibrated* confidence: a temperature fitted on golden
tasks scored as if they were normal ones (``calibrated_labels``; docs/quality.md).

Only normal tasks are aggregated (golden and training tasks have a known answer already), and
only accepted answers count, so rejecting a cheater's answers changes the results. The models
are numpy (``bot.tasks.crowd_models``); crowd-kit and pandas are not needed at run time.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from sqlalchemy import select
from sqlmodel import Session, col

from bot.autoseg import rle
from bot.tasks import calibration
from bot.tasks import crowd_models as models
from bot.tasks.crowd_models import FloatArray, IntArray
from bot.tasks.models import PIN_MASK, Answer, AnswerStatus, Project, ProjectType, Task, TaskKind
from bot.tasks.projects import answer_values
from bot.tasks.quality_math import WEIGHT_K, best, vote_weight

log = structlog.get_logger("crowdpin.quality")

METHODS = ("majority_vote", "weighted_vote", "dawid_skene", "auto")
CROWDKIT = "crowdkit:"
# Dawid–Skene estimates a labels x labels confusion matrix per worker; with fewer answers per
# worker and label than this on average the matrices are mostly noise and prior (and fit their
# own votes: three workers on a dozen tasks "prove" one another right), so the weighted vote is
# the safer choice.
DS_MIN_ANSWERS_PER_WORKER_AND_LABEL = 5
# Pseudo-answers per true class in every worker's confusion matrix (crowd_models.dawid_skene).
DS_PRIOR = 2.0
# Golden tasks with answers needed before a temperature is fitted on them, and the folds they are
# held out in; fewer golden tasks leave the model's own posteriors (priors still apply).
CALIBRATION_MIN_GOLDEN = 10
CALIBRATION_FOLDS = 5


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


def worker_accuracy(data: _Data) -> dict[int, float]:
    """The accuracy each worker's vote is weighted with (see ``_accuracies``), by worker id."""
    if not data.votes:
        return {}
    enc = _encode(data)
    accuracy = _accuracies(enc.answers, enc.golden)
    return {worker: float(accuracy[i]) for i, worker in enumerate(enc.workers)}


# --- the models on integer-coded answers -------------------------------------------------------


@dataclass(slots=True)
class _Encoded:
    answers: models.Answers
    tasks: list[int]  # task id per task index
    workers: list[int]  # worker id per worker index
    labels: list[str]  # label per label index, the project's order first (it breaks ties)
    golden: dict[int, int]  # task index -> true label index


def _encode(data: _Data) -> _Encoded:
    """Normal and golden answers as integer codes; golden truths as (task index -> label index)."""
    rows = [(v.task_id, v.worker_id, v.value) for v in data.votes]
    rows += [(task, worker, value) for task, worker, value, _truth in data.golden]
    truths = {task: truth for task, _w, _v, truth in data.golden}
    seen = {value for _t, _w, value in rows} | set(truths.values())
    labels = [label for label in data.labels if label in seen]
    labels += sorted(seen - set(labels))
    task_ids = list(dict.fromkeys(t for t, _w, _v in rows))
    worker_ids = list(dict.fromkeys(w for _t, w, _v in rows))
    t_index = {t: i for i, t in enumerate(task_ids)}
    w_index = {w: i for i, w in enumerate(worker_ids)}
    l_index = {label: i for i, label in enumerate(labels)}
    answers = models.Answers.of(
        [t_index[t] for t, _w, _v in rows], [w_index[w] for _t, w, _v in rows], [l_index[v] for _t, _w, v in rows], len(labels)
    )
    golden = {t_index[t]: l_index[truth] for t, truth in truths.items() if t in t_index}
    return _Encoded(answers, task_ids, worker_ids, labels, golden)


def _ds_scores(a: models.Answers, golden: dict[int, int], prior: float) -> FloatArray:
    return models.log_scores(a, models.dawid_skene(a, golden=golden, prior=prior))


def _accuracies(a: models.Answers, golden: dict[int, int]) -> FloatArray:
    """Per worker: golden accuracy where the worker answered golden tasks (in ``golden``); else
    agreement with the majority of the *other* answers on the same normal tasks (Wawa without
    the worker's own vote, which in a crowd of three is a third of the majority it is judged
    by). Both are shrunk by ``2 * WEIGHT_K`` pseudo-answers toward halfway between chance and
    perfect, so a few answers never make an oracle, and a newcomer's vote still counts."""
    prior = (1 + 1 / max(2, a.n_labels)) / 2
    pseudo = 2 * WEIGHT_K
    truth = np.full(a.n_tasks, -1, dtype=np.intp)
    if golden:
        truth[np.fromiter(golden.keys(), dtype=np.intp)] = np.fromiter(golden.values(), dtype=np.intp)
    on_golden = truth[a.task] >= 0
    g_total = np.bincount(a.worker[on_golden], minlength=a.n_workers)
    g_right = np.bincount(a.worker[on_golden], weights=(a.label == truth[a.task])[on_golden], minlength=a.n_workers)
    others = a.counts()[a.task]  # (answers, labels) votes on the answer's task...
    others[np.arange(a.task.size), a.label] -= 1  # ...without the answer itself
    top = others.max(axis=1)
    unique = (others == top[:, None]).sum(axis=1) == 1
    judged = ~on_golden & (top > 0) & unique  # someone else answered, and their majority is clear
    agree = np.argmax(others, axis=1) == a.label
    n_total = np.bincount(a.worker[judged], minlength=a.n_workers)
    n_agree = np.bincount(a.worker[judged], weights=agree[judged], minlength=a.n_workers)
    return np.where(g_total > 0, (pseudo * prior + g_right) / (pseudo + g_total), (pseudo * prior + n_agree) / (pseudo + n_total))


def _weighted_scores(a: models.Answers, golden: dict[int, int], n_labels: int) -> FloatArray:
    """Summed log-odds vote weights per label (the one-coin posterior before the softmax)."""
    weights = np.array([vote_weight(float(acc), n_labels) for acc in _accuracies(a, golden)])
    return a.counts(weights[a.worker])


def _scorer(method: str, n_labels: int) -> Callable[[models.Answers, dict[int, int]], FloatArray]:
    if method == "dawid_skene":
        return lambda a, golden: _ds_scores(a, golden, DS_PRIOR)
    return lambda a, golden: _weighted_scores(a, golden, n_labels)


def _heldout_golden(
    enc: _Encoded, score: Callable[[models.Answers, dict[int, int]], FloatArray], n_normal: Sequence[int], seed: int
) -> tuple[FloatArray, IntArray, IntArray]:
    """Golden tasks scored as if they were normal ones: in each of ``CALIBRATION_FOLDS`` folds
    the fold's golden tasks lose their truth and keep only as many of their answers as a normal
    task gets (drawn from ``n_normal``), and the model is refitted without them.

    Returns (scores, truth, fold) per held-out golden task.
    """
    a = enc.answers
    g_tasks = np.array(sorted(enc.golden), dtype=np.intp)
    rng = np.random.default_rng(seed)
    rng.shuffle(g_tasks)
    order = np.argsort(a.task, kind="stable")
    starts = np.searchsorted(a.task[order], np.arange(a.n_tasks + 1))
    folds = min(CALIBRATION_FOLDS, len(g_tasks))
    out_s, out_y, out_f = [], [], []
    for f in range(folds):
        held = g_tasks[f::folds]
        drop = np.zeros(a.task.size, dtype=bool)
        for t in held:
            rows = order[starts[t] : starts[t + 1]]
            n = int(rng.choice(n_normal)) if len(n_normal) else len(rows)
            drop[rng.permutation(rows)[max(1, n) :]] = True
        sub = models.Answers(a.task[~drop], a.worker[~drop], a.label[~drop], a.n_tasks, a.n_workers, a.n_labels)
        held_set = set(held.tolist())
        scores = score(sub, {t: v for t, v in enc.golden.items() if t not in held_set})
        out_s.append(scores[held])
        out_y.append(np.array([enc.golden[int(t)] for t in held], dtype=np.intp))
        out_f.append(np.full(len(held), f, dtype=np.intp))
    k = a.n_labels
    if not out_s:
        return np.zeros((0, k)), np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    return np.concatenate(out_s), np.concatenate(out_y), np.concatenate(out_f)


@dataclass(slots=True)
class Calibrated:
    """Labels of one method with calibrated confidence, and how the calibration was checked."""

    labels: Labels
    temperature: float
    golden_confidence: list[float]  # held-out golden tasks, each calibrated without its own fold
    golden_correct: list[bool]


def calibrated_labels(data: _Data, method: str) -> Calibrated:
    """``weighted_vote`` or ``dawid_skene`` over normal and golden answers (golden truths anchor
    the workers' weights / confusion matrices), with a temperature fitted on held-out golden
    tasks when there are at least ``CALIBRATION_MIN_GOLDEN`` of them (see ``bot.tasks.calibration``)."""
    if not data.votes:
        return Calibrated({}, 1.0, [], [])
    enc = _encode(data)
    score = _scorer(method, max(2, len(data.labels)))
    scores = score(enc.answers, enc.golden)
    temperature = 1.0
    g_conf: list[float] = []
    g_ok: list[bool] = []
    if len(enc.golden) >= CALIBRATION_MIN_GOLDEN:
        index = {task_id: i for i, task_id in enumerate(enc.tasks)}
        normal = np.array(sorted({index[v.task_id] for v in data.votes}), dtype=np.intp)
        n_normal = np.bincount(enc.answers.task, minlength=enc.answers.n_tasks)[normal]
        seed = int(data.project.id or 0)
        held_s, held_y, held_f = _heldout_golden(enc, score, n_normal.tolist(), seed)
        temperature = calibration.fit_temperature(held_s, held_y)
        for f in np.unique(held_f):  # each fold judged with a temperature fitted on the others
            mine = held_f == f
            t_f = calibration.fit_temperature(held_s[~mine], held_y[~mine]) if (~mine).any() else 1.0
            p = calibration.softmax(held_s[mine], t_f)
            g_conf += p.max(axis=1).tolist()
            g_ok += (np.argmax(p, axis=1) == held_y[mine]).tolist()
    probas = calibration.softmax(scores, temperature)
    wanted = {v.task_id for v in data.votes}
    out: Labels = {}
    for i, task_id in enumerate(enc.tasks):
        if task_id in wanted:
            j = int(np.argmax(probas[i]))
            out[task_id] = (enc.labels[j], float(probas[i, j]))
    return Calibrated(out, temperature, g_conf, g_ok)


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
    stack = np.stack([m for _, m in decoded])
    if method == "dawid_skene" and len(decoded) >= 2:
        result = models.mask_em(stack)
    else:
        w = np.array([(weights or {}).get(worker, 1.0) for worker, _ in decoded], dtype=np.float64)
        result = models.mask_vote(stack, w)
    ious = [rle.mask_iou(m, result) for _, m in decoded]
    return json.dumps(rle.encode(result), separators=(",", ":")), float(np.mean(ious))


# --- crowd-kit, optional -------------------------------------------------------------------------


def _crowdkit_class(method: str) -> Any:
    """The crowd-kit aggregator class a ``crowdkit:<Class>`` method names (imported on demand)."""
    name = method[len(CROWDKIT) :]
    try:
        from crowdkit import aggregation
    except ImportError:
        raise AggregationError(
            f"aggregation method {method!r} needs crowd-kit, which is not installed: pip install 'crowdpin[crowdkit]'"
        ) from None
    cls = getattr(aggregation, name, None)
    base = getattr(aggregation, "base", None)
    classification = getattr(base, "BaseClassificationAggregator", None)
    if not isinstance(cls, type) or (classification is not None and not issubclass(cls, classification)):
        known = sorted(
            n
            for n in dir(aggregation)
            if isinstance(getattr(aggregation, n), type)
            and classification is not None
            and issubclass(getattr(aggregation, n), classification)
        )
        raise AggregationError(f"crowd-kit has no classification aggregator {name!r}; one of: {', '.join(known)}")
    return cls


def _crowdkit_labels(data: _Data, method: str) -> Labels:
    """Labels from a crowd-kit classification aggregator; confidence is its posterior where it
    has one (``fit_predict_proba``), else the share of votes for the chosen label."""
    cls = _crowdkit_class(method)
    if not data.votes:
        return {}
    import pandas as pd

    frame = pd.DataFrame(
        {"task": [v.task_id for v in data.votes], "worker": [v.worker_id for v in data.votes], "label": [v.value for v in data.votes]}
    )
    model = cls()
    try:
        probas = model.fit_predict_proba(frame) if hasattr(model, "fit_predict_proba") else None
        labels = model.labels_ if probas is not None and getattr(model, "labels_", None) is not None else model.fit_predict(frame)
    except Exception as exc:  # a third-party model: report which one failed, and why
        raise AggregationError(f"crowd-kit {cls.__name__} failed on this project: {type(exc).__name__}: {exc}") from exc
    votes = _by_task(data.votes)
    out: Labels = {}
    for task_id, label in labels.items():
        if pd.isna(label) or int(task_id) not in votes:  # NaN: no label for this task
            continue
        if probas is not None and task_id in probas.index and label in probas.columns:
            confidence = float(probas.at[task_id, label])
        else:
            values = [v.value for v in votes[int(task_id)]]
            confidence = values.count(str(label)) / len(values)
        out[int(task_id)] = (str(label), 0.0 if pd.isna(confidence) else confidence)
    return out


# --- entry point --------------------------------------------------------------------------------


def check_method(method: str) -> str:
    """``method`` if it names a method (crowd-kit ones are checked for form only, so that a
    missing extra is reported when it is used, not when settings load); else AggregationError."""
    if method in METHODS:
        return method
    if method.startswith(CROWDKIT) and method[len(CROWDKIT) :].isidentifier():
        return method
    raise AggregationError(
        f"unknown aggregation method {method!r}; use one of: {', '.join(METHODS)}, or crowdkit:<Class> (e.g. crowdkit:GLAD)"
    )


def resolve_method(project: Project, method: str, n_votes: int, n_workers: int) -> str:
    """What ``auto`` means for this project and amount of data."""
    check_method(method)
    if method != "auto":
        return method
    if project.type == ProjectType.CLASSIFY:
        n_labels = max(2, len(answer_values(project)))
        enough = n_workers >= 3 and n_votes >= DS_MIN_ANSWERS_PER_WORKER_AND_LABEL * n_labels * n_workers
        return "dawid_skene" if enough else "weighted_vote"
    return "weighted_vote"


def aggregate_project(session: Session, project_id: int, method: str = "auto") -> Iterator[TaskResult]:
    """One :class:`TaskResult` per normal task of the project, in task id order.

    Tasks without accepted answers are included with ``label=None`` and confidence 0, so an
    export always has every task of the project. The data is read and the labels computed
    before this returns (errors surface at the call, not half-way through an export); rows are
    then produced lazily.
    """
    check_method(method)
    data = _load(session, project_id)
    chosen = resolve_method(data.project, method, *_volume(data))
    return _results(data, chosen, _labels(data, chosen))


def _volume(data: _Data) -> tuple[int, int]:
    """(answers, workers) that inform the workers' models: normal and golden answers alike."""
    workers = {v.worker_id for v in data.votes} | {w for _t, w, _v, _truth in data.golden}
    return len(data.votes) + len(data.golden), len(workers)


def _labels(data: _Data, method: str) -> Labels:
    if method == "majority_vote":
        return _majority_labels(data)
    if method.startswith(CROWDKIT):
        return _crowdkit_labels(data, method)
    return calibrated_labels(data, method).labels


def golden_reliability(session: Session, project_id: int, method: str = "auto") -> tuple[str, list[float], list[bool]]:
    """(method used, confidence, correct) of the project's golden tasks scored as normal ones,
    each with a calibration fitted without it: the export's reliability, checked on facts.

    Empty when the method is not calibrated (majority vote, crowd-kit) or there are fewer than
    ``CALIBRATION_MIN_GOLDEN`` golden tasks with answers.
    """
    check_method(method)
    data = _load(session, project_id)
    chosen = resolve_method(data.project, method, *_volume(data))
    if chosen not in ("weighted_vote", "dawid_skene"):
        return chosen, [], []
    result = calibrated_labels(data, chosen)
    return chosen, result.golden_confidence, result.golden_correct


def _results(data: _Data, method: str, labels: Labels) -> Iterator[TaskResult]:
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
