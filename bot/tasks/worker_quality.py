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

The Dawid–Skene fit is the costly part (it reads every answer of the project: about 0.2 s of
CPU at 5,000 answers), so it is kept per database and project. Called inline (the CLI, the
tests) it is refitted when the project's answers have grown (always while the project is
small, by 5 % or after a minute once it is large). In the bot, :class:`BackgroundFits` takes it
off the answer path: a tap reads the last fit and never waits for one; a stale fit is redone on
a thread of its own from a read-only session, at most every ``max(2 s, 10 x its own cost)``, so
it never holds the database thread that serialises SQLite's writes and uses at most about a
tenth of a core. A worker is therefore judged on crowd evidence up to a few seconds old; golden
answers newer than the fit are never lost: while the fit holds fewer of this worker's answers
than their golden count, the golden answers alone are judged.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

import structlog
from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.tasks.models import Answer, AnswerStatus, Project
from bot.tasks.projects import answer_values

CONSTANT_MIN_ANSWERS = 20
SMALL_PROJECT_ANSWERS = 1000  # below this the fit is redone whenever an answer was added
REFIT_GROWTH = 1.05
REFIT_SECONDS = 60.0
BACKGROUND_MIN_SECONDS = 2.0  # a background refit at most this often ...
BACKGROUND_COST_FACTOR = 10.0  # ... and at most every this many times its own duration

log = structlog.get_logger("crowdpin.quality")


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
_BACKGROUND: weakref.WeakKeyDictionary[object, BackgroundFits] = weakref.WeakKeyDictionary()


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
    """Per worker id: the evidence of the project's current Dawid–Skene fit (refitted as needed;
    by :class:`BackgroundFits` without waiting, where one serves this database)."""
    assert project.id is not None
    background = _BACKGROUND.get(session.get_bind())
    if background is not None:
        return background.evidence(project.id)
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


class BackgroundFits:
    """Dawid–Skene fits made on a thread of their own (see the module docstring).

    ``read_session`` opens a session for the fit's reads (``Database.read_session``: on SQLite a
    reader beside the one writer). :meth:`serve` makes :func:`crowd_evidence` use this object
    for sessions bound to ``engine``; :meth:`close` stops that and waits for a running fit.
    """

    def __init__(
        self,
        read_session: Callable[[], AbstractContextManager[Session]],
        *,
        min_seconds: float = BACKGROUND_MIN_SECONDS,
        cost_factor: float = BACKGROUND_COST_FACTOR,
    ) -> None:
        self._read_session = read_session
        self.min_seconds = min_seconds
        self.cost_factor = cost_factor
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crowdpin-fit")
        self._lock = threading.Lock()
        self._fits: dict[int, tuple[float, float, dict[int, Evidence]]] = {}  # project -> (at, cost, evidence)
        self._pending: set[int] = set()
        self._engines: list[object] = []
        self._closed = False
        self.fits = 0  # fits made (for tests and metrics)

    def serve(self, engine: object) -> None:
        _BACKGROUND[engine] = self
        self._engines.append(engine)

    def evidence(self, project_id: int) -> dict[int, Evidence]:
        """The last fit of the project (empty before the first); a stale one is redone later."""
        now = time.monotonic()
        with self._lock:
            held = self._fits.get(project_id)
            stale = held is None or now - held[0] >= max(self.min_seconds, self.cost_factor * held[1])
            if stale and project_id not in self._pending and not self._closed:  # closed: a tap during shutdown
                self._pending.add(project_id)
                self._executor.submit(self._refit, project_id)
        return held[2] if held is not None else {}

    def wait(self) -> None:
        """Block until the fits asked for so far are done (tests, shutdown)."""
        self._executor.submit(lambda: None).result()

    def _refit(self, project_id: int) -> None:
        started = time.monotonic()
        cpu = time.thread_time()
        try:
            with self._read_session() as session:
                project = session.get(Project, project_id)
                workers = _fit(session, project) if project is not None else {}
        except Exception as exc:  # noqa: BLE001 - the next tap asks again; taps never see this
            log.warning("quality.fit_error", project_id=project_id, error=str(exc))
            with self._lock:
                self._pending.discard(project_id)
            return
        cost = time.thread_time() - cpu
        with self._lock:
            self._fits[project_id] = (started, cost, workers)
            self._pending.discard(project_id)
            self.fits += 1
        log.debug("quality.fitted", project_id=project_id, workers=len(workers), cpu_ms=round(cost * 1000, 1))

    def close(self) -> None:
        with self._lock:
            self._closed = True
        for engine in self._engines:
            if _BACKGROUND.get(engine) is self:
                del _BACKGROUND[engine]
        self._engines.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)


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
