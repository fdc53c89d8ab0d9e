"""The confirm-box picture: one predicted box drawn clearly, the image's other boxes dimmed, and a
zoomed inset when the box is too small to judge on a phone.

Coordinates are in pixels of the picture drawn on (the phone copy); the caller scales boxes from
the original. The inset is cut from a sharper source when one is given (the original image),
so a 20-pixel box becomes a readable close-up instead of an upscaled blur.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from bot.autoseg.overlay import _to_pil, _ui_scale

BOX_RGB = (255, 214, 0)  # the box being judged: bright yellow, readable on most photos
HALO_RGB = (0, 0, 0)
CONTEXT_RGB = (200, 200, 200)  # the other predictions: thin, grey, under the dimming
INSET_BORDER_RGB = (255, 255, 255)
SMALL_SHARE = 0.07  # a box whose longer side is under this share of the picture's shorter side gets an inset (~20 pt on a phone)
INSET_SHARE = 0.42  # the inset's side, as a share of the picture's shorter side
Rect = tuple[float, float, float, float]  # x, y, width, height

CropSource = Callable[[Rect], Image.Image]
"""Returns the region ``(x, y, w, h)`` of the picture's coordinates, from a sharper image."""


def needs_inset(box: Rect, size: tuple[int, int]) -> bool:
    w, h = size
    return max(box[2], box[3]) < SMALL_SHARE * min(w, h)


def _rect(d: ImageDraw.ImageDraw, box: Rect, width: int, colour: tuple[int, int, int], halo: bool) -> None:
    x, y, w, h = box
    x0, y0, x1, y1 = x, y, x + max(w, 1.0), y + max(h, 1.0)
    if halo:  # a dark edge on both sides keeps the line visible on light and dark photos
        d.rectangle((x0 - 1, y0 - 1, x1 + 1, y1 + 1), outline=HALO_RGB, width=width + 2)
    d.rectangle((x0, y0, x1, y1), outline=colour, width=width)


def _inset_region(box: Rect, size: tuple[int, int]) -> Rect:
    """A square around the box, four box-sizes wide (at least 1/25 of the picture), inside the picture:
    the box fills about a quarter of the close-up, with enough around it to judge the fit."""
    w, h = size
    x, y, bw, bh = box
    side = min(float(min(w, h)), max(4.0 * max(bw, bh), 0.04 * min(w, h)))
    cx, cy = x + bw / 2, y + bh / 2
    x0 = min(max(0.0, cx - side / 2), w - side)
    y0 = min(max(0.0, cy - side / 2), h - side)
    return (x0, y0, side, side)


def _far_corner(box: Rect, size: tuple[int, int], inset: int, margin: int) -> tuple[int, int]:
    """The corner of the picture farthest from the box, so the inset never hides it."""
    w, h = size
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    left = cx > w / 2
    top = cy > h / 2
    return (margin if left else w - inset - margin, margin if top else h - inset - margin)


def render_box(
    image: np.ndarray | Image.Image,
    box: Rect,
    others: Sequence[Rect] = (),
    *,
    crop: CropSource | None = None,
    dim: float = 0.72,
) -> Image.Image:
    """The photo, dimmed outside ``box``; ``others`` thin and grey; the box thick and yellow.

    A small box (:func:`needs_inset`) gets a close-up in the far corner, framed in white, with
    the region it shows outlined on the photo.
    """
    base = _to_pil(image)
    w, h = base.size
    k = _ui_scale(w, h)
    rgb = np.asarray(base, dtype=np.float32).copy()
    keep = rgb.copy()
    rgb *= dim
    x, y, bw, bh = box
    x0, y0 = max(0, int(x)), max(0, int(y))
    x1, y1 = min(w, int(np.ceil(x + bw)) + 1), min(h, int(np.ceil(y + bh)) + 1)
    rgb[y0:y1, x0:x1] = keep[y0:y1, x0:x1]
    out = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(out)
    thin = max(1, round(1.2 * k))
    for other in others:
        _rect(d, other, thin, CONTEXT_RGB, halo=False)
    thick = max(3, round(4 * k))
    small = needs_inset(box, (w, h))
    if small:  # drawn just outside a tiny box, which a thick line would cover; the inset shows the fit
        pad = thick + 1
        _rect(d, (box[0] - pad, box[1] - pad, box[2] + 2 * pad, box[3] + 2 * pad), thick, BOX_RGB, halo=True)
    else:
        _rect(d, box, thick, BOX_RGB, halo=True)
    if small:
        region = _inset_region(box, (w, h))
        side = max(64, round(INSET_SHARE * min(w, h)))
        close = crop(region) if crop is not None else base.crop((region[0], region[1], region[0] + region[2], region[1] + region[3]))
        close = close.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
        zoom = side / region[2]
        cd = ImageDraw.Draw(close)
        inner = ((box[0] - region[0]) * zoom, (box[1] - region[1]) * zoom, box[2] * zoom, box[3] * zoom)
        _rect(cd, inner, max(3, round(3.5 * k)), BOX_RGB, halo=True)
        margin = max(4, round(10 * k))
        px, py = _far_corner(box, (w, h), side, margin)
        border = max(2, round(3 * k))
        d.rectangle((px - border, py - border, px + side + border - 1, py + side + border - 1), fill=INSET_BORDER_RGB)
        out.paste(close, (px, py))
        _rect(d, region, thin, INSET_BORDER_RGB, halo=False)
    return out
