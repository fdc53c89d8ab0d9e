"""The arithmetic of trust, kept free of the database so the bot, aggregation and the simulator
agree on it and it can be tested exhaustively.

Workers are modelled with one number, their accuracy ``a``: they give the true label with
probability ``a`` and any of the other ``n - 1`` labels uniformly otherwise. Under that model the
posterior of a label is a softmax of the summed log-odds weights of the votes for it, which is
both the accuracy-weighted vote and the online confidence used for dynamic overlap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

K = 0.5  # smoothing prior: a worker with no golden answers counts as 50 % accurate
# Vote weights use a stronger prior than the accuracy shown to workers: workers who passed the
# exam are selected on a lucky streak of five, so their first golden answers overstate them, and
# an overconfident weight would close a task too early.
WEIGHT_K = 2.0
_CLIP = 1e-3


def smoothed_accuracy(correct: int, total: int, k: float = K) -> float:
    """(K + correct) / (2K + total): never 0 or 1, so a few lucky or unlucky answers don't decide."""
    if correct < 0 or total < 0 or correct > total:
        raise ValueError(f"bad golden counts: {correct} correct of {total}")
    return (k + correct) / (2 * k + total)


def weight_accuracy(correct: int, total: int) -> float:
    """The accuracy a vote is weighted with: golden accuracy shrunk towards 50 % by ``WEIGHT_K``."""
    return smoothed_accuracy(correct, total, WEIGHT_K)


def vote_weight(accuracy: float, n_labels: int) -> float:
    """Log-odds weight of one vote: log((n - 1) a / (1 - a)); 0 for a worker no better than chance.

    It is the optimal weight for the one-coin model (Nitzan & Paroush); a random clicker gets 0
    instead of a negative weight, so a vote never counts *against* its label.
    """
    n = max(2, n_labels)
    a = min(max(accuracy, _CLIP), 1 - _CLIP)
    return max(0.0, math.log((n - 1) * a / (1 - a)))


def posterior(votes: Iterable[tuple[str, float]], labels: Sequence[str]) -> dict[str, float]:
    """P(true label | votes) under the one-coin model with a uniform prior over ``labels``.

    ``votes`` are (value, weight) pairs; values outside ``labels`` are added to the label set.
    """
    scores: dict[str, float] = dict.fromkeys(labels, 0.0)
    for value, weight in votes:
        scores[value] = scores.get(value, 0.0) + weight
    if not scores:
        return {}
    top = max(scores.values())
    exp = {label: math.exp(score - top) for label, score in scores.items()}
    total = sum(exp.values())
    return {label: value / total for label, value in exp.items()}


def best(probs: dict[str, float], order: Sequence[str] = ()) -> tuple[str, float]:
    """The most probable label; ties go to the label first in ``order``, then alphabetical."""
    if not probs:
        raise ValueError("no labels")
    rank = {value: i for i, value in enumerate(order)}
    label = min(probs, key=lambda v: (-probs[v], rank.get(v, len(rank)), v))
    return label, probs[label]
