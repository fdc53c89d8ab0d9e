"""bot.autoseg.segment_candidates forwards to the plugged-in back end, or falls back to one
candidate from segment()."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from bot.autoseg import Candidate, segment, segment_candidates, set_segmenter
from tests.masks.candidate_backend import Rings


class _OnlySegment:
    def segment(self, image: np.ndarray, points: object, box: object = None) -> np.ndarray:
        m = np.zeros(image.shape[:2], bool)
        m[10:20, 10:30] = True
        return m


class _WrongShape(Rings):
    def segment_candidates(self, image: np.ndarray, points: object, box: object = None, k: int = 3) -> list[Candidate]:
        return [Candidate(np.zeros((3, 3), bool), 1.0)]


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    set_segmenter(None)


IMAGE = np.zeros((60, 80, 3), np.uint8)


def test_a_back_end_with_only_segment_gives_one_candidate() -> None:
    set_segmenter(_OnlySegment())
    (only,) = segment_candidates(IMAGE, [(20, 15, True)])
    assert only.mask.dtype == bool and only.mask.shape == (60, 80)
    assert np.array_equal(only.mask, segment(IMAGE, [(20, 15, True)]))


def test_a_back_end_with_candidates_gives_them_best_first_cut_to_k() -> None:
    set_segmenter(Rings())
    three = segment_candidates(IMAGE, [(40, 30, True)])
    assert len(three) == 3 and [c.score for c in three] == sorted((c.score for c in three), reverse=True)
    assert all(c.mask.dtype == bool and c.mask.shape == (60, 80) for c in three)
    assert np.array_equal(three[0].mask, segment(IMAGE, [(40, 30, True)]))
    assert [np.array_equal(a.mask, b.mask) for a, b in zip(segment_candidates(IMAGE, [(40, 30, True)], k=2), three)] == [True, True]


def test_bad_k_and_bad_back_end_output_are_clear_errors() -> None:
    set_segmenter(Rings())
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k must be"):
            segment_candidates(IMAGE, [(40, 30, True)], k=k)  # type: ignore[arg-type]
    set_segmenter(_WrongShape())
    with pytest.raises(RuntimeError, match="shape"):
        segment_candidates(IMAGE, [(40, 30, True)])


class _Based(Rings):
    def __init__(self) -> None:
        self.bases: list[int] = []

    def segment_candidates(self, image: np.ndarray, points: object, box: object = None, k: int = 3, *, base: int = 0) -> list[Candidate]:
        self.bases.append(base)
        return super().segment_candidates(image, points, box, k)


def test_base_goes_to_a_back_end_that_takes_it_and_is_left_out_for_one_that_does_not() -> None:
    based = _Based()
    set_segmenter(based)
    segment_candidates(IMAGE, [(40, 30, True), (42, 31, True)], base=2)
    segment_candidates(IMAGE, [(40, 30, True), (42, 31, True)])
    assert based.bases == [2, 0]
    set_segmenter(Rings())  # its segment_candidates has no base: called as always
    assert len(segment_candidates(IMAGE, [(40, 30, True), (42, 31, True)], base=1)) == 3
