"""Object masks from a pin, several pins or a box ("Magic Pin").

Public API::

    from bot.autoseg import segment, segment_candidates
    mask = segment(image_rgb_uint8, [(x, y, True)], box=None)   # bool (H, W)
    cands = segment_candidates(image_rgb_uint8, [(x, y, True)], k=3)
    cands[0].mask, cands[0].score                                # best first

The work is done by a pluggable :class:`Segmenter` (default: classical OpenCV, see
``classical.py``); see ``base.py`` and docs/autoseg.md for plugging in a learned model.
Importing this package is cheap: OpenCV is imported only when something needs it.
"""

from __future__ import annotations

from typing import Any

from .base import (
    ENV_VAR,
    Box,
    Candidate,
    Point,
    Segmenter,
    configure,
    get_segmenter,
    load_backend,
    refines_picked,
    segment,
    segment_candidates,
    set_segmenter,
    validate_inputs,
)

__all__ = [
    "ENV_VAR",
    "Box",
    "Candidate",
    "ClassicalSegmenter",
    "Point",
    "Segmenter",
    "configure",
    "get_segmenter",
    "load_backend",
    "refines_picked",
    "segment",
    "segment_candidates",
    "set_segmenter",
    "validate_inputs",
]


def __getattr__(name: str) -> Any:  # lazy: keeps `import bot.autoseg` free of cv2
    if name == "ClassicalSegmenter":
        from .classical import ClassicalSegmenter

        return ClassicalSegmenter
    raise AttributeError(name)
