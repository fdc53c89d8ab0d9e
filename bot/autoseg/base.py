"""The segmenter interface, input validation and the back-end plug-in point.

A back end is any object with ``segment(image, points, box=None) -> bool (H, W)``; it
may also have ``segment_candidates(image, points, box=None, k=3)`` returning up to ``k``
masks best first (as :class:`Candidate` objects or ``(mask, score)`` pairs).  A back end
without it gives one candidate, its ``segment`` mask.
The bot only ever calls :func:`bot.autoseg.segment` / :func:`bot.autoseg.segment_candidates`,
which forward to the current back end, so a learned model can replace the classical one
without touching the bot:

* programmatically: ``set_segmenter(MySegmenter())``;
* by configuration: ``AUTOSEG_BACKEND`` (read through ``bot.config``, so ``.env`` works; the bot
  passes its own settings with :func:`configure`) =
    - ``classical`` (default) - :class:`bot.autoseg.classical.ClassicalSegmenter`;
    - ``package.module:attr`` - ``attr`` is a Segmenter class or zero-argument
      factory (called once), or a ready instance;
    - ``onnx:/path/to/model.onnx`` - reserved for a SAM-family ONNX model; needs a
      plug-in that implements it (see docs/autoseg.md), otherwise a clear error.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

Point = tuple[float, float, bool]
Box = tuple[float, float, float, float]

ENV_VAR = "AUTOSEG_BACKEND"


@dataclass(frozen=True, eq=False)
class Candidate:
    """One proposed object mask: ``mask`` bool (H, W) at the image's size; ``score`` ranks
    the candidates of one call (higher first; not comparable across calls)."""

    mask: np.ndarray
    score: float


@runtime_checkable
class Segmenter(Protocol):
    """Anything that turns an image plus prompts into an object mask."""

    def segment(
        self,
        image: np.ndarray,
        points: Sequence[Point],
        box: Box | None = None,
    ) -> np.ndarray:
        """Return a bool mask (H, W) for ``image`` (RGB uint8, (H, W, 3)).

        ``points`` are ``(x, y, positive)`` in pixel coordinates of ``image``;
        ``box`` is ``(x0, y0, x1, y1)`` in pixels.  Must be deterministic.
        """
        ...


def validate_inputs(
    image: np.ndarray,
    points: Iterable[Sequence[Any]] | None,
    box: Sequence[float] | None,
) -> tuple[np.ndarray, list[Point], Box | None]:
    """Check and normalise the arguments of ``segment``; raise ``ValueError`` if bad."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {img.shape}")
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {img.dtype}")
    h, w = img.shape[:2]
    if h < 2 or w < 2:
        raise ValueError("image too small")
    pts: list[Point] = []
    for p in points or []:
        if len(p) != 3:
            raise ValueError(f"point must be (x, y, positive), got {p!r}")
        x, y, pos = float(p[0]), float(p[1]), bool(p[2])
        if not (np.isfinite(x) and np.isfinite(y)):
            raise ValueError(f"point has non-finite coordinates: {p!r}")
        # Clamp taps that land a hair outside the picture.
        pts.append((min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0), pos))
    bx: Box | None = None
    if box is not None:
        if len(box) != 4:
            raise ValueError(f"box must be (x0, y0, x1, y1), got {box!r}")
        x0, y0, x1, y1 = (float(v) for v in box)
        x0, x1 = sorted((min(max(x0, 0.0), float(w)), min(max(x1, 0.0), float(w))))
        y0, y1 = sorted((min(max(y0, 0.0), float(h)), min(max(y1, 0.0), float(h))))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise ValueError(f"box is empty after clipping: {box!r}")
        bx = (x0, y0, x1, y1)
    if not pts and bx is None:
        raise ValueError("need at least one point or a box")
    return np.ascontiguousarray(img), pts, bx


_lock = threading.Lock()
_current: Segmenter | None = None
_spec: str | None = None  # set by configure(); None: AUTOSEG_BACKEND from bot.config's settings


def load_backend(spec: str | None) -> Segmenter:
    """Build a segmenter from a back-end spec string (see module docstring)."""
    spec = (spec or "classical").strip()
    if spec in ("", "classical", "default"):
        from .classical import ClassicalSegmenter

        return ClassicalSegmenter()
    if spec.startswith("onnx:"):
        path = spec[len("onnx:") :]
        raise RuntimeError(
            f"AUTOSEG_BACKEND={spec!r}: no ONNX back end is bundled; point AUTOSEG_BACKEND at "
            f"a plug-in ('package.module:Factory') that loads {path!r} (docs/autoseg.md)"
        )
    if ":" in spec:
        mod_name, _, attr = spec.partition(":")
        obj = getattr(importlib.import_module(mod_name), attr)
        seg = obj() if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "segment")) else obj
        if not isinstance(seg, Segmenter):
            raise TypeError(f"AUTOSEG_BACKEND={spec!r} did not give an object with .segment()")
        return seg
    raise ValueError(f"unknown AUTOSEG_BACKEND {spec!r}")


def configure(spec: str | None) -> None:
    """Use the back end ``spec`` (see the module docstring) from the next segmentation on;
    ``None``: the ``AUTOSEG_BACKEND`` setting. ``bot.app`` calls this with the bot's settings."""
    global _current, _spec
    with _lock:
        if spec != _spec:
            _spec, _current = spec, None


def _configured_spec() -> str:
    if _spec is not None:
        return _spec
    from bot.config import get_settings  # plain pydantic-settings: environment and .env

    return get_settings().autoseg.backend


def get_segmenter() -> Segmenter:
    """The current back end; created on first use from the configured spec."""
    global _current
    with _lock:
        if _current is None:
            _current = load_backend(_configured_spec())
        return _current


def set_segmenter(segmenter: Segmenter | None) -> None:
    """Install a back end (``None`` resets to the configured default on next use)."""
    global _current
    if segmenter is not None and not isinstance(segmenter, Segmenter):
        raise TypeError("segmenter must have a segment(image, points, box=None) method")
    with _lock:
        _current = segmenter


def segment(
    image: np.ndarray,
    points: Sequence[Sequence[Any]],
    box: Sequence[float] | None = None,
) -> np.ndarray:
    """Mask (bool, (H, W)) of the object indicated by ``points`` and/or ``box``."""
    img, pts, bx = validate_inputs(image, points, box)
    mask = np.asarray(get_segmenter().segment(img, pts, bx))
    if mask.shape != img.shape[:2]:
        raise RuntimeError(f"segmenter returned shape {mask.shape}, expected {img.shape[:2]}")
    return mask.astype(bool, copy=False)


def segment_candidates(
    image: np.ndarray,
    points: Sequence[Sequence[Any]],
    box: Sequence[float] | None = None,
    k: int = 3,
    *,
    base: int = 0,
) -> list[Candidate]:
    """Up to ``k`` candidate masks of the object indicated by ``points`` and/or ``box``, best
    first (at least one). A back end without ``segment_candidates`` gives one: its ``segment``
    mask (score 1.0).

    ``base``: which candidate of the first positive pin the later points refine (its index in
    that pin's own ``segment_candidates``), when the worker picked one before adding points.
    A back end whose ``segment_candidates`` takes no ``base`` refines as it always does."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if isinstance(base, bool) or not isinstance(base, int) or base < 0:
        raise ValueError(f"base must be a candidate index (0, 1, ...), got {base!r}")
    img, pts, bx = validate_inputs(image, points, box)
    seg = get_segmenter()
    fn = getattr(seg, "segment_candidates", None)
    raw: list[Any]
    if not callable(fn):
        raw = [Candidate(np.asarray(seg.segment(img, pts, bx)), 1.0)]
    elif base and _takes_base(fn):
        raw = list(fn(img, pts, bx, k, base=base))
    else:
        raw = list(fn(img, pts, bx, k))
    if not raw:
        raise RuntimeError("segmenter returned no candidates")
    out: list[Candidate] = []
    for item in raw[:k]:
        mask, score = (item.mask, item.score) if isinstance(item, Candidate) else item
        mask = np.asarray(mask)
        if mask.shape != img.shape[:2]:
            raise RuntimeError(f"segmenter returned shape {mask.shape}, expected {img.shape[:2]}")
        out.append(Candidate(mask.astype(bool, copy=False), float(score)))
    return out


def refines_picked() -> bool:
    """Whether the plugged-in segmenter refines a picked candidate (its ``segment_candidates``
    takes ``base``). Without it, asking a worker which outline to fix would be a question
    whose answer changes nothing."""
    fn = getattr(get_segmenter(), "segment_candidates", None)
    return callable(fn) and _takes_base(fn)


def _takes_base(fn: Any) -> bool:
    import inspect

    try:
        return "base" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
