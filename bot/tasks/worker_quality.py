"""How sure we are that a worker is worse than useful: the posterior behind the accuracy rule.

A fixed threshold on a point estimate punishes hard tasks: where careful people are 60–75 %
right, a few unlucky golden answers put an honest worker under "70 %" and out. Instead the
rule asks the question that matters — *is this worker confidently worse than useful?* — and
answers it from everything the project knows about the worker:

* golden answers (their truth is known), and
* agreement with the crowd on normal tasks, as the export's model sees it: Dawid–Skene with a
  full confusion matrix per worker (``crowd_models.dawid_skene``, golden tasks pinned to their
  truth, the export's Dirichlet prior). A worker's *soft correct count* is the sum over their
  answers of the model's probability that the answer is the true label; on golden tasks that
  is exactly 1 or 0.

The worker's accuracy gets a uniform Beta(1, 1) prior, updated with the soft counts:
``Beta(1 + correct, 1 + total - correct)``. The worker is blocked when
``P(accuracy <= floor) > block_confidence`` (default 0.95), where ``floor`` is the project's
``accuracy_threshold`` if an operator set one, else chance plus ``block_margin``
(1 / labels + 0.05 by default). A worker with few answers is never confidently bad, so is never
blocked on luck; a crowd that is weak as a whole is judged against chance, not against a number
chosen for easy tasks.

The constant-answer rule catches the spammer that accuracy can miss on skewed label sets
(always tapping the majority label is "70 % accurate" when 70 % of the tasks have it): a worker
whose every answer (at least ``CONSTANT_MIN_ANSWERS``) is the same label, when an informative
worker would give that label with at most the crowd's share ``p`` of the time, has done
something with probability ``p ** n``; below ``1 - block_confidence`` the worker is blocked.

The Dawid–Skene fit is the costly part (it reads every answer of the project), so it is kept
per database and project and refitted only when the project's answers have grown (always
while the project is small, by 5 % or after a minute once it is large).
"""

from __future__ import annotations

import math
import time
import weakref
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.tasks.models import Answer, AnswerStatus, Project
from bot.tasks.projects import answer_values

CONSTANT_MIN_ANSWERS = 20
SMALL_PROJECT_ANSWERS = 1000  # below this the fit is redone whenever an answer was added
REFIT_GROWTH = 1.05
REFIT_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the crowd model says about one worker."""

    correct: float  # soft count: expected answers equal to the true label
    total: int
    top_label: str | None  # the label this worker gave, if they gave only one
    top_share: float  # the crowd's share of that label among all answers (1.0 if none)


@dataclass(slots=True)
class _Fit:
    key: tuple[int, int]
    at: float
    workers: dict[int, Evidence]


_FITS: weakref.WeakKeyDictionary[object, dict[int, _Fit]] = weakref.WeakKeyDictionary()


def beta_cdf(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Lentz's continued fraction)."""
    if a <= 0 or b <= 0:
        raise ValueError("beta parameters must be positive")
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast on this side only
        return 1.0 - beta_cdf(1.0 - x, b, a)
    log_front = a * math.log(x) + b * math.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)), -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-12:
            break
    return min(1.0, max(0.0, math.exp(log_front) * h / a))


def prob_at_most(floor: float, correct: float, total: float) -> float:
    """P(accuracy <= floor) under Beta(1 + correct, 1 + total - correct)."""
    wrong = max(0.0, total - correct)
    return beta_cdf(floor, 1.0 + max(0.0, correct), 1.0 + wrong)


def floor_of(project: Project) -> float:
    """The accuracy a useful worker has: the operator's threshold, else chance + margin."""
    if project.accuracy_threshold is not None:
        return float(project.accuracy_threshold)
    n = max(2, len(answer_values(project)))
    return min(0.99, 1.0 / n + float(project.block_margin or 0.0))


def _fit(session: Session, project: Project) -> dict[int, Evidence]:
    from bot.tasks import aggregate
    from bot.tasks import crowd_models as models

    assert project.id is not None
    data = aggregate._load(session, project.id)
    if not data.votes and not data.golden:
        return {}
    enc = aggregate._encode(data)
    fit = models.dawid_skene(enc.answers, golden=enc.golden, prior=aggregate.DS_PRIOR)
    a = enc.answers
    hit = fit.probas[a.task, a.label]
    correct = [0.0] * a.n_workers
    total = [0] * a.n_workers
    labels: list[Counter[int]] = [Counter() for _ in range(a.n_workers)]
    for w, h, lab in zip(a.worker.tolist(), hit.tolist(), a.label.tolist(), strict=True):
        correct[w] += h
        total[w] += 1
        labels[w][lab] += 1
    shares = Counter(a.label.tolist())
    n_all = max(1, int(a.label.size))
    out = {}
    for w, worker_id in enumerate(enc.workers):
        only = next(iter(labels[w])) if len(labels[w]) == 1 else None
        out[int(worker_id)] = Evidence(
            correct=correct[w],
            total=total[w],
            top_label=enc.labels[only] if only is not None else None,
            top_share=shares[only] / n_all if only is not None else 1.0,
        )
    return out


def crowd_evidence(session: Session, project: Project) -> dict[int, Evidence]:
    """Per worker id: the evidence of the project's current Dawid–Skene fit (refitted as needed)."""
    assert project.id is not None
    count, last = session.execute(
        select(func.count(col(Answer.id)), func.max(col(Answer.id))).where(
            col(Answer.project_id) == project.id, col(Answer.status) == AnswerStatus.ACCEPTED.value
        )
    ).one()
    key = (int(count or 0), int(last or 0))
    per_db = _FITS.setdefault(session.get_bind(), {})
    held = per_db.get(project.id)
    now = time.monotonic()
    if held is not None:
        fresh = held.key == key or (
            key[0] >= SMALL_PROJECT_ANSWERS
            and key[0] < held.key[0] * REFIT_GROWTH
            and now - held.at < REFIT_SECONDS
            and key[0] >= held.key[0]
        )
        if fresh:
            return held.workers
    workers = _fit(session, project)
    per_db[project.id] = _Fit(key, now, workers)
    return workers


@dataclass(frozen=True, slots=True)
class Verdict:
    """The accuracy rule's reading of one worker."""

    reason: str | None  # "accuracy" | "constant" | None (keep)
    accuracy: float  # posterior mean
    p_useless: float  # P(accuracy <= floor)
    floor: float


def judge(project: Project, evidence: Evidence | None, golden_correct: int, golden_total: int) -> Verdict:
    """Block or keep, by the posterior (see the module docstring). ``evidence`` None: golden only."""
    floor = floor_of(project)
    if evidence is not None and evidence.total >= golden_total:
        correct, total = evidence.correct, float(evidence.total)
    else:
        correct, total = float(golden_correct), float(golden_total)
    mean = (1.0 + correct) / (2.0 + total)
    confidence = project.block_confidence
    if confidence is None:
        return Verdict(None, mean, 0.0, floor)
    p = prob_at_most(floor, correct, total)
    if p > confidence:
        return Verdict("accuracy", mean, p, floor)
    if (
        evidence is not None
        and evidence.top_label is not None
        and evidence.total >= CONSTANT_MIN_ANSWERS
        and evidence.top_share < 1.0
        and evidence.top_share**evidence.total < 1.0 - confidence
    ):
        return Verdict("constant", mean, p, floor)
    return Verdict(None, mean, p, floor)
