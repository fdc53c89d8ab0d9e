"""Answer aggregation models in plain numpy: majority vote, Wawa, one-coin and full-confusion
Dawid–Skene, and the per-pixel mask vote and EM.

These replace crowd-kit at run time (it pulled ~700 MB of dependencies into the bot for three
models). With ``prior=0`` each model here computes what its crowd-kit counterpart computes
(``MajorityVote``, ``Wawa``, ``DawidSkene``, ``OneCoinDawidSkene``, ``SegmentationMajorityVote``,
``SegmentationEM``) — same initialisation, update order, floors and stopping rule — and the
tests hold labels and posteriors to 1e-6 of crowd-kit's on simulated and edge-case crowds.

The priors are what crowd-kit lacks and small projects need: with a handful of answers per
worker, maximum-likelihood confusion matrices fit the data perfectly (a worker seen three times
and agreeing three times is "100 % accurate") and the posteriors say 1.00 for a 2-of-3 vote.
``prior`` adds Dirichlet pseudo-answers to each worker's confusion matrix, spread like the
crowd's pooled confusion matrix (the average worker of this very project, so it adapts to easy
and hard projects alike) and never worse than chance; a worker with few answers then looks like
the average worker until their own answers say otherwise.

Answers are integer-coded: ``task``, ``worker``, ``label`` arrays of equal length, with labels
indexed in a caller-chosen order that also breaks ties (the first label wins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_EPS = 1e-10  # crowd-kit's floor for probabilities in the EM

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Answers:
    """One row per answer; indices are 0-based and dense (every task has at least one answer)."""

    task: IntArray
    worker: IntArray
    label: IntArray
    n_tasks: int
    n_workers: int
    n_labels: int

    @classmethod
    def of(cls, task: object, worker: object, label: object, n_labels: int | None = None) -> Answers:
        t = np.asarray(task, dtype=np.intp)
        w = np.asarray(worker, dtype=np.intp)
        lab = np.asarray(label, dtype=np.intp)
        if not (t.shape == w.shape == lab.shape) or t.ndim != 1:
            raise ValueError("task, worker and label need the same length")
        if t.size and min(t.min(), w.min(), lab.min()) < 0:
            raise ValueError("indices must be non-negative")
        k = int(lab.max()) + 1 if lab.size else 0
        if n_labels is not None:
            if n_labels < k:
                raise ValueError("a label index is out of range")
            k = n_labels
        return cls(t, w, lab, int(t.max()) + 1 if t.size else 0, int(w.max()) + 1 if w.size else 0, k)

    def counts(self, weights: FloatArray | None = None) -> FloatArray:
        """(tasks, labels) sums of ``weights`` (1 per answer by default)."""
        flat = np.bincount(self.task * self.n_labels + self.label, weights=weights, minlength=self.n_tasks * self.n_labels)
        return flat.reshape(self.n_tasks, self.n_labels).astype(np.float64)


@dataclass(slots=True)
class Fit:
    """Posteriors per task and what the model learnt about the workers."""

    probas: FloatArray  # (tasks, labels), rows sum to 1
    skills: FloatArray  # (workers,) accuracy-like skill; NaN for a worker the model does not rate
    errors: FloatArray | None = None  # (workers, given label, true label) for Dawid–Skene
    priors: FloatArray | None = None  # (labels,) class priors
    iterations: int = 0

    @property
    def labels(self) -> IntArray:
        """Most probable label per task; ties go to the lowest label index."""
        return np.argmax(self.probas, axis=1)

    @property
    def confidence(self) -> FloatArray:
        return self.probas.max(axis=1) if self.probas.size else np.zeros(0)


def _normalize(scores: FloatArray) -> FloatArray:
    total = scores.sum(axis=1, keepdims=True)
    return np.divide(scores, total, out=np.full_like(scores, 1.0 / max(1, scores.shape[1])), where=total > 0)


def _agreement(a: Answers, labels: IntArray) -> FloatArray:
    hits = np.bincount(a.worker, weights=(a.label == labels[a.task]).astype(np.float64), minlength=a.n_workers)
    seen = np.bincount(a.worker, minlength=a.n_workers)
    return np.divide(hits, seen, out=np.full(a.n_workers, np.nan), where=seen > 0)


def majority_vote(a: Answers) -> Fit:
    """Share of votes per label (crowd-kit ``MajorityVote``); skill = agreement with the result."""
    probas = _normalize(a.counts())
    return Fit(probas, _agreement(a, np.argmax(probas, axis=1)))


def wawa(a: Answers) -> Fit:
    """Worker Agreement with Aggregate (crowd-kit ``Wawa``): votes weighted by each worker's
    agreement with the plain majority."""
    skills = _agreement(a, majority_vote(a).labels)
    probas = _normalize(a.counts(np.nan_to_num(skills[a.worker])))
    return Fit(probas, skills)


def log_odds_vote(a: Answers, weights: FloatArray) -> Fit:
    """Posterior of the one-coin model with known per-worker log-odds ``weights``
    (``quality_math.vote_weight``): a softmax of the summed weights of each label's votes."""
    scores = a.counts(weights[a.worker])
    scores -= scores.max(axis=1, keepdims=True)
    return Fit(_normalize(np.exp(scores)), np.full(a.n_workers, np.nan))


# --- Dawid–Skene -------------------------------------------------------------------------------


def sum_rows(index: IntArray, rows: FloatArray, n: int) -> FloatArray:
    """``out[i] = sum of rows[j] where index[j] == i`` for an (N, k) ``rows``: ``np.add.at``'s
    result, with one ``np.bincount`` per column, which is several times faster (the EM's cost)."""
    out = np.empty((n, rows.shape[1]))
    for j in range(rows.shape[1]):
        out[:, j] = np.bincount(index, weights=rows[:, j], minlength=n)
    return out


def _golden_onehot(a: Answers, golden: dict[int, int] | None) -> tuple[IntArray, IntArray]:
    if not golden:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    tasks = np.fromiter(golden.keys(), dtype=np.intp, count=len(golden))
    truth = np.fromiter(golden.values(), dtype=np.intp, count=len(golden))
    keep = (tasks < a.n_tasks) & (truth < a.n_labels)
    return tasks[keep], truth[keep]


def _prior_mean(a: Answers, probas: FloatArray) -> FloatArray:
    """The crowd's pooled confusion matrix (given label x true label), columns summing to 1,
    pulled up to at least chance on the diagonal: the 'average worker' a newcomer is assumed to be."""
    k = a.n_labels
    pooled = np.zeros((k, k))
    pooled += sum_rows(a.label, probas[a.task], k)
    pooled += 1.0 / k  # one pseudo-answer per cell: a label nobody gave keeps some mass
    pooled /= pooled.sum(axis=0, keepdims=True)
    diag = np.diag(pooled).copy()
    low = diag < 1.0 / k
    if low.any():  # worse than chance on average: use chance for those classes
        pooled[:, low] = 1.0 / k
    return pooled


def dawid_skene(
    a: Answers,
    *,
    golden: dict[int, int] | None = None,
    prior: float = 0.0,
    one_coin: bool = False,
    n_iter: int = 100,
    tol: float = 1e-5,
) -> Fit:
    """Dawid–Skene EM. ``golden`` maps task index -> true label index: those posteriors are
    pinned to the truth in every step (crowd-kit's ``true_labels``), so workers' matrices are
    learnt from facts where facts exist.

    ``one_coin``: each worker has one accuracy and errs uniformly (crowd-kit
    ``OneCoinDawidSkene``; it has no ``golden``, ours accepts it). ``prior``: pseudo-answers per
    true class added to every worker's confusion matrix (see the module docstring); 0 reproduces
    crowd-kit. The class priors get the same number of pseudo-tasks spread uniformly.
    """
    k = a.n_labels
    if a.task.size == 0 or k == 0:
        return Fit(np.zeros((a.n_tasks, k)), np.full(a.n_workers, np.nan), priors=np.zeros(k))
    g_tasks, g_truth = _golden_onehot(a, golden)
    seen_wl = np.zeros((a.n_workers, k), dtype=bool)
    seen_wl[a.worker, a.label] = True
    n_answers = np.bincount(a.worker, minlength=a.n_workers).astype(np.float64)

    def pin(probas: FloatArray) -> FloatArray:
        if g_tasks.size:
            probas[g_tasks] = 0.0
            probas[g_tasks, g_truth] = 1.0
        return probas

    def class_priors(probas: FloatArray) -> FloatArray:
        if prior <= 0:
            return probas.mean(axis=0)
        return (probas.sum(axis=0) + prior / k) / (a.n_tasks + prior)

    def m_step(probas: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(errors[worker, given, true], skills[worker])."""
        if one_coin:
            hits = np.bincount(a.worker, weights=probas[a.task, a.label], minlength=a.n_workers)
            if prior > 0:
                mean = _prior_mean(a, probas)
                base = max(float(np.trace(mean)) / k, 1.0 / k)
                skills = (hits + prior * base) / (n_answers + prior)
            else:
                skills = np.divide(hits, n_answers, out=np.full(a.n_workers, np.nan), where=n_answers > 0)
            off = (1.0 - skills) / max(1, k - 1)
            errors = np.repeat(off[:, None, None], k, axis=1).repeat(k, axis=2)
            errors[:, np.arange(k), np.arange(k)] = skills[:, None]
            return np.clip(errors, _EPS, 1 - _EPS), skills
        counts = sum_rows(a.worker * k + a.label, probas[a.task], a.n_workers * k).reshape(a.n_workers, k, k)
        if prior > 0:
            counts += prior * _prior_mean(a, probas)[None, :, :]
        else:  # crowd-kit: a floor on the (worker, label) cells the worker used, 0 elsewhere
            counts = np.where(seen_wl[:, :, None], np.maximum(counts, _EPS), 0.0)
        total = counts.sum(axis=1, keepdims=True)
        errors = np.divide(counts, total, out=np.full_like(counts, 1.0 / k), where=total > 0)
        skills = np.einsum("wkk,k->w", errors, probas.mean(axis=0))
        return errors, skills

    def loglik(priors: FloatArray, errors: FloatArray) -> FloatArray:
        """(answers, labels) log P(answer | true label) + log P(true label), as crowd-kit's bound sums it."""
        return np.log(errors[a.worker, a.label]) + np.log(np.maximum(priors, _EPS))[None, :]

    def e_step(priors: FloatArray, errors: FloatArray) -> FloatArray:
        scores = sum_rows(a.task, np.log(errors[a.worker, a.label]), a.n_tasks)
        scores += np.log(np.maximum(priors, _EPS))[None, :]
        scores -= scores.max(axis=1, keepdims=True)
        return _normalize(np.exp(scores))

    probas = pin(majority_vote(a).probas)
    priors = class_priors(probas)
    errors, skills = m_step(probas)
    loss = -np.inf
    iterations = 0
    while iterations < n_iter:
        iterations += 1
        probas = pin(e_step(priors, errors))
        priors = class_priors(probas)
        errors, skills = m_step(probas)
        clipped = np.maximum(probas, _EPS)
        bound = float((probas[a.task] * loglik(priors, errors)).sum() - (clipped * np.log(clipped)).sum()) / a.task.size
        if bound - loss < tol:
            break
        loss = bound
    return Fit(probas, skills, errors, priors, iterations)


def log_scores(a: Answers, fit: Fit) -> FloatArray:
    """(tasks, labels) log prior + summed log-likelihood of each task's answers under a fitted
    Dawid–Skene model: its posteriors before normalisation, for calibration to temper."""
    k = a.n_labels
    scores = np.zeros((a.n_tasks, k))
    if fit.errors is None or fit.priors is None or a.task.size == 0:
        return scores
    scores += sum_rows(a.task, np.log(np.maximum(fit.errors[a.worker, a.label], _EPS)), a.n_tasks)
    scores += np.log(np.maximum(fit.priors, _EPS))[None, :]
    return scores


# --- masks ---------------------------------------------------------------------------------------


def mask_vote(masks: NDArray[np.bool_], weights: FloatArray | None = None) -> NDArray[np.bool_]:
    """Per-pixel (weighted) majority: a pixel is in when its yes votes are at least half the
    weight (crowd-kit ``SegmentationMajorityVote``, ties in)."""
    stack = np.asarray(masks, dtype=np.float64)
    w = np.ones(len(stack)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        w = np.ones(len(stack))
    return np.asarray(2 * np.tensordot(w, stack, axes=1) - w.sum() >= 0)


def mask_em(masks: NDArray[np.bool_], n_iter: int = 10, tol: float = 1e-5, eps: float = 1e-15) -> NDArray[np.bool_]:
    """Per-pixel EM with one accuracy per worker over the pixels anyone marked (crowd-kit
    ``SegmentationEM``, step for step)."""
    seg = np.asarray(masks, dtype=bool)
    region = int(seg.any(axis=0).sum())
    if region == 0:
        return np.zeros(seg.shape[1:], dtype=bool)
    segf = seg.astype(np.float64)
    sizes = segf.sum(axis=(1, 2))
    priors: FloatArray | float = segf.mean(axis=0)

    def m_step(post: FloatArray) -> FloatArray:
        return 1 - (sizes + post.sum() - 2 * (segf * post).sum(axis=(1, 2))) / region

    def weighted(errors: FloatArray) -> FloatArray:
        e = errors[:, None, None]
        return e * segf + (1 - e) * (1 - segf)

    errors = m_step(np.round(priors))
    loss = -np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(n_iter):
            ws = weighted(errors)
            pos = np.log(priors) + np.log(ws).sum(axis=0)
            neg = np.log(1 - priors) + np.log(1 - ws).sum(axis=0)
            post = np.nan_to_num(np.exp(pos) / (np.exp(pos) + np.exp(neg)), nan=0)
            post[post < eps] = 0
            errors = m_step(post)
            ws = weighted(errors)
            bound = (
                np.nan_to_num((np.log(ws) + np.log(priors)[None, ...]) * post, nan=0).sum()
                + np.nan_to_num((np.log(1 - ws) + np.log(1 - priors)[None, ...]) * (1 - post), nan=0).sum()
                - float(np.nan_to_num(np.log(post) * post, nan=0).sum())
            ) / seg.size
            priors = post
            if bound - loss < tol:
                break
            loss = bound
    return np.asarray(priors > 0.5)
