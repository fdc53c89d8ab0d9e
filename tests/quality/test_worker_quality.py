"""The posterior behind the accuracy rule: the Beta CDF and the verdicts it gives."""

from __future__ import annotations

import math
import random

import pytest

from bot.tasks import worker_quality as wq
from bot.tasks.models import Project


def _integer_beta_cdf(x: float, a: int, b: int) -> float:
    """I_x(a, b) for integers: P(Binomial(a + b - 1, x) >= a)."""
    n = a + b - 1
    return sum(math.comb(n, j) * x**j * (1 - x) ** (n - j) for j in range(a, n + 1))


@pytest.mark.parametrize("a,b", [(1, 1), (1, 4), (3, 7), (20, 5), (60, 60), (200, 90)])
def test_beta_cdf_matches_the_binomial_sum(a: int, b: int) -> None:
    for x in (0.01, 0.2, 0.38, 0.5, 0.55, 0.7, 0.99):
        assert wq.beta_cdf(x, a, b) == pytest.approx(_integer_beta_cdf(x, a, b), abs=1e-9)


def test_beta_cdf_edges_and_bad_input() -> None:
    assert wq.beta_cdf(0.0, 2, 3) == 0.0 and wq.beta_cdf(1.0, 2, 3) == 1.0
    assert wq.beta_cdf(0.3, 2.5, 4.5) == pytest.approx(1 - wq.beta_cdf(0.7, 4.5, 2.5), abs=1e-12)
    with pytest.raises(ValueError):
        wq.beta_cdf(0.5, 0, 1)


def _project(**kw: object) -> Project:
    return Project(name="p", labels_json='["1", "2"]', **kw)


def test_floor_is_chance_plus_margin_or_the_operators_threshold() -> None:
    assert wq.floor_of(_project()) == pytest.approx(0.55)
    assert wq.floor_of(Project(name="p", labels_json='["1", "2", "3", "4"]')) == pytest.approx(0.30)
    assert wq.floor_of(_project(accuracy_threshold=0.7)) == pytest.approx(0.7)


def test_hard_task_workers_are_kept_and_useless_ones_blocked() -> None:
    p = _project()
    honest = wq.judge(p, wq.Evidence(correct=30.0, total=50, top_label=None, top_share=1.0), 3, 5)  # 60 %
    assert honest.reason is None and honest.p_useless < 0.5
    few = wq.judge(p, wq.Evidence(correct=1.0, total=4, top_label=None, top_share=1.0), 1, 4)  # unlucky start
    assert few.reason is None
    random_clicker = wq.judge(p, wq.Evidence(correct=45.0, total=100, top_label=None, top_share=1.0), 0, 0)
    assert random_clicker.reason == "accuracy" and random_clicker.p_useless > 0.95
    off = wq.judge(_project(block_confidence=None), wq.Evidence(correct=0.0, total=100, top_label=None, top_share=1.0), 0, 0)
    assert off.reason is None


def test_constant_answers_are_caught_even_when_they_look_accurate() -> None:
    """Always tapping the label 80 % of tasks have looks 80 % accurate; 0.8^20 = 0.012 < 0.05."""
    p = _project()
    spam = wq.judge(p, wq.Evidence(correct=16.0, total=20, top_label="1", top_share=0.8), 0, 0)
    assert spam.reason == "constant"
    short = wq.judge(p, wq.Evidence(correct=8.0, total=10, top_label="1", top_share=0.8), 0, 0)
    assert short.reason is None  # 0.8^10 = 0.11: an honest streak is still plausible


def test_honest_simulated_workers_are_rarely_blocked() -> None:
    """Workers at 60 % on a binary task, 10..200 answers each: the rule (floor 0.55) keeps ~all."""
    rng = random.Random(7)
    p = _project()
    blocked = 0
    for _ in range(500):
        n = rng.randint(10, 200)
        correct = sum(rng.random() < 0.6 for _ in range(n))
        blocked += wq.judge(p, wq.Evidence(float(correct), n, None, 1.0), 0, 0).reason is not None
    assert blocked <= 10
