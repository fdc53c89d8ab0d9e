"""Is a confidence of 0.8 right 80 % of the time? Measuring it (ECE, reliability bins) and fixing
it (a temperature fitted on golden tasks).

Why a temperature: Dawid–Skene and the weighted vote multiply the evidence of every answer as if
workers erred independently. Real crowds share mistakes (a hard photo fools several people at
once), so the summed log-evidence overstates what ten answers know. Dividing the log-scores by
``T > 1`` before the softmax keeps the ranking of labels (the label never changes) and only
tempers the number; ``T`` is fitted by maximum likelihood on golden tasks scored as if they were
normal ones. A Gaussian prior on ``log T`` (sd 0.5, centred on 1) keeps a project with few golden
tasks near the uncalibrated model instead of jumping to whatever a dozen tasks suggest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

BINS = 10
LOG_T_SD = 0.5  # prior on log T: T within [0.37, 2.7] a priori, the data can move it further
T_RANGE = (0.5, 20.0)


@dataclass(frozen=True, slots=True)
class Bin:
    """One equal-width confidence bin: [lo, hi), the last one closed."""

    lo: float
    hi: float
    n: int
    confidence: float  # mean confidence in the bin (NaN when empty)
    accuracy: float  # share right (NaN when empty)


def _as_arrays(confidence: object, correct: object) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    c = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=np.float64).ravel()
    if c.shape != ok.shape:
        raise ValueError("confidence and correct need the same length")
    if c.size and (np.isnan(c).any() or c.min() < 0 or c.max() > 1):
        raise ValueError("confidence must be within [0, 1]")
    return c, ok


def reliability(confidence: object, correct: object, bins: int = BINS) -> list[Bin]:
    """Confidence against observed accuracy in ``bins`` equal-width bins over [0, 1]."""
    c, ok = _as_arrays(confidence, correct)
    index = np.minimum((c * bins).astype(np.intp), bins - 1)
    n = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=c, minlength=bins)
    ok_sum = np.bincount(index, weights=ok, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf_mean, acc = conf_sum / n, ok_sum / n
    return [Bin(i / bins, (i + 1) / bins, int(n[i]), float(conf_mean[i]), float(acc[i])) for i in range(bins)]


def ece(confidence: object, correct: object, bins: int = BINS) -> float:
    """Expected calibration error: the bin-size-weighted mean |confidence - accuracy| (0 = calibrated)."""
    table = reliability(confidence, correct, bins)
    total = sum(b.n for b in table)
    if not total:
        return 0.0
    return float(sum(b.n * abs(b.confidence - b.accuracy) for b in table if b.n) / total)


def softmax(scores: NDArray[np.float64], temperature: float = 1.0) -> NDArray[np.float64]:
    """Row-wise softmax of ``scores / temperature``; rows of -inf only are uniform."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    if z.size == 0:
        return z
    top = np.max(z, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(z - top)
    total = e.sum(axis=1, keepdims=True)
    return np.divide(e, total, out=np.full_like(e, 1.0 / z.shape[1]), where=total > 0)


def _nll(scores: NDArray[np.float64], truth: NDArray[np.intp], log_t: float) -> float:
    p = softmax(scores, float(np.exp(log_t)))[np.arange(len(truth)), truth]
    return float(-np.log(np.maximum(p, 1e-12)).sum() + 0.5 * (log_t / LOG_T_SD) ** 2)


def fit_temperature(scores: object, truth: object) -> float:
    """MAP temperature for log-scores ``(tasks, labels)`` whose true labels are ``truth``.

    A grid over log T, then golden-section refinement around the best point: one parameter,
    no optimiser library, and the same answer on every machine.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(truth, dtype=np.intp)
    if s.ndim != 2 or len(s) != len(y):
        raise ValueError("scores must be (tasks, labels) with one truth per task")
    if not len(y):
        return 1.0
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    grid = np.linspace(lo, hi, 41)
    values = [_nll(s, y, g) for g in grid]
    i = int(np.argmin(values))
    a, b = grid[max(0, i - 1)], grid[min(len(grid) - 1, i + 1)]
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        x1, x2 = b - ratio * (b - a), a + ratio * (b - a)
        if _nll(s, y, x1) <= _nll(s, y, x2):
            b = x2
        else:
            a = x1
    return float(np.exp((a + b) / 2))
