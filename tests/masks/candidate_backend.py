"""Segmenter plug-ins for the picker tests, loaded the way an operator plugs in a model:
``AUTOSEG_BACKEND=tests.masks.candidate_backend:Rings``.

They make candidates whose pixels a test can predict exactly, so the tests check the bot's
picker (which mask is stored, paid, drawn) and not the classical segmenter's quality.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from bot.autoseg import Box, Candidate, Point

RADII = (0.12, 0.22, 0.34)  # of the short side: discs this far apart never overlap above IoU 0.3


def disc(shape: tuple[int, int], x: float, y: float, radius: float) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    return np.asarray((xx - x) ** 2 + (yy - y) ** 2 <= radius**2)


def ring_masks(shape: tuple[int, int], points: Sequence[Point], k: int = 3) -> list[np.ndarray]:
    """Discs of :data:`RADII` around the first positive point, minus small discs around the
    negative points; the smallest disc is "best"."""
    positive = [(x, y) for x, y, pos in points if pos]
    if not positive:
        return [np.zeros(shape, bool)]
    x, y = positive[0]
    short = min(shape)
    out = []
    for r in RADII[:k]:
        m = disc(shape, x, y, r * short)
        for nx, ny, pos in points:
            if not pos:
                m &= ~disc(shape, nx, ny, 0.08 * short)
        out.append(m)
    return out


class Rings:
    """Three nested discs around the pin, best (smallest) first."""

    def segment_candidates(self, image: np.ndarray, points: Sequence[Point], box: Box | None = None, k: int = 3) -> list[Candidate]:
        masks = ring_masks(image.shape[:2], points, k)
        return [Candidate(m, 1.0 - 0.1 * i) for i, m in enumerate(masks)]

    def segment(self, image: np.ndarray, points: Sequence[Point], box: Box | None = None) -> np.ndarray:
        return self.segment_candidates(image, points, box, 1)[0].mask


class PickedRings(Rings):
    """Rings that refine the outline the worker chose (``base``): once points were added, that
    ring comes first, the others after it in their usual order."""

    def __init__(self) -> None:
        self.bases: list[int] = []  # every base asked for: what the bot passed down

    def segment_candidates(
        self, image: np.ndarray, points: Sequence[Point], box: Box | None = None, k: int = 3, *, base: int = 0
    ) -> list[Candidate]:
        self.bases.append(base)
        masks = ring_masks(image.shape[:2], points)
        if len(points) > 1 and 0 < base < len(masks):
            masks = [masks[base], *masks[:base], *masks[base + 1 :]]
        return [Candidate(m, 1.0 - 0.1 * i) for i, m in enumerate(masks[:k])]


class TwoRings(Rings):
    """Two candidates only: the picker must not offer a third."""

    def segment_candidates(self, image: np.ndarray, points: Sequence[Point], box: Box | None = None, k: int = 3) -> list[Candidate]:
        return super().segment_candidates(image, points, box, min(k, 2))


class SegmentOnly:
    """The classical segmenter seen through ``segment`` alone: always one candidate, shown with
    Keep, whatever candidates the classical back end itself offers."""

    def __init__(self) -> None:
        from bot.autoseg.classical import ClassicalSegmenter

        self._inner = ClassicalSegmenter()

    def segment(self, image: np.ndarray, points: Sequence[Point], box: Box | None = None) -> np.ndarray:
        return self._inner.segment(image, points, box)


class Held:
    """One ring per pin, made only when the test says so: a tap that is still being segmented
    at a moment the test chooses (a restart in the middle of it). ``started`` is set when a
    segmentation begins; it waits for ``release`` (at most 20 s)."""

    started = threading.Event()
    release = threading.Event()

    def segment(self, image: np.ndarray, points: Sequence[Point], box: Box | None = None) -> np.ndarray:
        if min(image.shape[:2]) >= 100:  # not the Mini App server's warm-up on a tiny picture
            Held.started.set()
            Held.release.wait(20)
        return ring_masks(image.shape[:2], points, 1)[0]
