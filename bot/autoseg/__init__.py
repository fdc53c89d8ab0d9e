"""Object masks from a pin, several pins or a box ("Magic Pin").

Public API::

    from bot.autoseg import segment
    mask = segment(image_rgb_uint8, [(x, y, True)], box=None)   # bool (H, W)

The work is done by a pluggable :class:`Segmenter` (default: classical OpenCV, see
``classical.py``); see ``base.py`` and docs/autoseg.md for plugging in a learned model.
Importing this package is cheap: OpenCV is imported only when something needs it.
"""

from __future__ import annotations

from typing import Any

from .base import (
    ENV_VAR,
    Box,
    Point,
    Segmenter,
    configure,
    get_segmenter,
    load_backend,
    segment,
    set_segmenter,
    validate_inputs,
)

__all__ = [
    "ENV_VAR",
    "Box",
    "ClassicalSegmenter",
    "Point",
    "Segmenter",
    "configure",
    "get_segmenter",
    "load_backend",
    "segment",
    "set_segmenter",
    "validate_inputs",
]


def __getattr__(name: str) -> Any:  # lazy: keeps `import bot.autoseg` free of cv2
    if name == "ClassicalSegmenter":
        from .classical import ClassicalSegmenter

        return ClassicalSegmenter
    raise AttributeError(name)
