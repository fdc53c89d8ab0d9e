"""The arithmetic of trust: smoothing, vote weights and the posterior."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.tasks.quality_math import best, posterior, smoothed_accuracy, vote_weight, weight_accuracy


def test_smoothed_accuracy_k_half() -> None:
    assert smoothed_accuracy(0, 0) == 0.5
    assert smoothed_accuracy(3, 3) == pytest.approx(3.5 / 4)
    assert smoothed_accuracy(0, 3) == pytest.approx(0.5 / 4)
    assert weight_accuracy(5, 5) == pytest.approx(7 / 9)  # stronger prior for weights
    for bad in ((-1, 2), (3, 2), (0, -1)):
        with pytest.raises(ValueError):
            smoothed_accuracy(*bad)


@given(st.integers(0, 500), st.integers(0, 500))
def test_smoothed_accuracy_is_strictly_inside_0_1(correct: int, extra: int) -> None:
    value = smoothed_accuracy(correct, correct + extra)
    assert 0.0 < value < 1.0


def test_vote_weight() -> None:
    assert vote_weight(1 / 3, 3) == 0.0  # chance level: no say
    assert vote_weight(0.1, 3) == 0.0  # worse than chance: clipped, never negative
    assert vote_weight(0.9, 3) == pytest.approx(math.log(2 * 0.9 / 0.1))
    assert vote_weight(1.0, 3) < 10  # clipped, finite
    assert vote_weight(0.9, 2) < vote_weight(0.9, 5)  # agreeing on one of many labels says more


@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 5)), max_size=8))
def test_posterior_is_a_distribution_and_follows_the_heaviest(votes: list[tuple[str, float]]) -> None:
    probs = posterior(votes, ["a", "b", "c"])
    assert set(probs) == {"a", "b", "c"}
    assert sum(probs.values()) == pytest.approx(1.0)
    scores = {k: sum(w for v, w in votes if v == k) for k in "abc"}
    top = max(scores.values())
    label, p = best(probs, ["a", "b", "c"])
    assert scores[label] == pytest.approx(top)
    assert p == pytest.approx(max(probs.values()))


def test_posterior_examples() -> None:
    w = vote_weight(0.9, 3)
    probs = posterior([("a", w), ("a", w)], ["a", "b", "c"])
    assert probs["a"] == pytest.approx(324 / 326)  # (2*9)^2 / ((2*9)^2 + 2)
    assert posterior([], ["a", "b"]) == {"a": 0.5, "b": 0.5}
    assert set(posterior([("z", 1.0)], ["a"])) == {"a", "z"}  # an unknown value still counts
    assert best({"a": 0.5, "b": 0.5}, ["b", "a"]) == ("b", 0.5)
    with pytest.raises(ValueError):
        best({}, [])
