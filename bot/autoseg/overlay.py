"""Phone-friendly pictures: mask overlays, pin markers and the lettered Magic-Pin grid.

Grid convention: ``rows`` x ``cols`` cells; **rows are letters from the top**
(A, B, C, ...), **columns are numbers from the left** (1, 2, ...).  So with the
default 4 x 4 grid, ``A1`` is the top-left cell, ``A4`` top-right, ``D1``
bottom-left and ``D4`` bottom-right; ``B3`` is the second row, third column.

All functions take an RGB uint8 numpy array (H, W, 3) or a PIL image; coordinates are
pixel coordinates of that image.  Outputs meant for Telegram are JPEG bytes whose long
side is at most ``max_side`` (1280 by default).
"""

from __future__ import annotations

import io
import string
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "cell_bounds",
    "cell_center",
    "cell_labels",
    "cell_of",
    "draw_grid",
    "fit_long_side",
    "overlay_jpeg",
    "render_overlay",
    "to_jpeg",
]

FILL_RGB = (0, 200, 255)  # translucent fill: cyan reads well on most photos
CONTOUR_RGB = (255, 230, 0)  # bright yellow line ...
HALO_RGB = (0, 0, 0)  # ... with a dark halo so it is crisp on light and dark areas
POS_RGB = (40, 200, 60)
NEG_RGB = (230, 40, 40)


# ---------------------------------------------------------------- grid cells
def _row_letter(i: int) -> str:
    letters = string.ascii_uppercase
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = letters[r] + s
    return s


def cell_labels(rows: int = 4, cols: int = 4) -> list[list[str]]:
    """Labels row by row: ``[["A1", "A2", ...], ["B1", ...], ...]``."""
    return [[f"{_row_letter(r)}{c + 1}" for c in range(cols)] for r in range(rows)]


def _parse_label(label: str, rows: int, cols: int) -> tuple[int, int]:
    s = label.strip().upper()
    i = 0
    while i < len(s) and s[i].isalpha():
        i += 1
    letters, digits = s[:i], s[i:]
    if not letters or not digits.isdigit():
        raise ValueError(f"bad cell label {label!r}")
    r = 0
    for ch in letters:
        r = r * 26 + (ord(ch) - ord("A") + 1)
    r -= 1
    c = int(digits) - 1
    if not (0 <= r < rows and 0 <= c < cols):
        raise ValueError(f"cell {label!r} outside a {rows}x{cols} grid")
    return r, c


def cell_bounds(label: str, width: int, height: int, rows: int = 4, cols: int = 4) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` of a cell."""
    r, c = _parse_label(label, rows, cols)
    return (c * width / cols, r * height / rows, (c + 1) * width / cols, (r + 1) * height / rows)


def cell_center(label: str, width: int, height: int, rows: int = 4, cols: int = 4) -> tuple[float, float]:
    """Pixel centre ``(x, y)`` of the cell called ``label`` (e.g. ``"B3"``)."""
    x0, y0, x1, y1 = cell_bounds(label, width, height, rows, cols)
    return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)


def cell_of(x: float, y: float, width: int, height: int, rows: int = 4, cols: int = 4) -> str:
    """Label of the cell that contains pixel ``(x, y)`` (clamped into the picture)."""
    c = min(max(int(x * cols // width), 0), cols - 1)
    r = min(max(int(y * rows // height), 0), rows - 1)
    return f"{_row_letter(r)}{c + 1}"


# ---------------------------------------------------------------- helpers
def _to_pil(image: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.dtype != np.uint8:
        raise ValueError("image must be uint8")
    return Image.fromarray(np.ascontiguousarray(arr[:, :, :3]), "RGB")


def fit_long_side(img: Image.Image, max_side: int = 1280) -> tuple[Image.Image, float]:
    """Downscale (never upscale) so the long side is <= ``max_side``; returns (image, scale)."""
    w, h = img.size
    s = min(1.0, max_side / max(w, h))
    if s < 1.0:
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    return img, s


def to_jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for name in ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "Arial Bold.ttf", "arialbd.ttf", "Arial.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow
        return ImageFont.load_default()


def _ui_scale(w: int, h: int) -> float:
    """Sizes are relative to the shorter side, so marks look the same on any phone photo."""
    return max(min(w, h), 64) / 720.0


# ---------------------------------------------------------------- grid
def draw_grid(
    image: np.ndarray | Image.Image,
    rows: int = 4,
    cols: int = 4,
    max_side: int = 1280,
) -> Image.Image:
    """The photo with a lightly drawn lettered grid (A1 top-left ... D4 bottom-right).

    Lines are thin, semi-transparent white with a faint dark shadow; each cell's label
    sits in its top-left corner on a small translucent tag.  Returns an RGB PIL image
    (long side <= ``max_side``); use :func:`to_jpeg` to send it.
    """
    base, _ = fit_long_side(_to_pil(image), max_side)
    w, h = base.size
    k = _ui_scale(w, h)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    lw = max(1, round(2 * k))
    for c in range(1, cols):
        x = round(c * w / cols)
        d.line([(x + 1, 0), (x + 1, h)], fill=(0, 0, 0, 70), width=lw)
        d.line([(x, 0), (x, h)], fill=(255, 255, 255, 140), width=lw)
    for r in range(1, rows):
        y = round(r * h / rows)
        d.line([(0, y + 1), (w, y + 1)], fill=(0, 0, 0, 70), width=lw)
        d.line([(0, y), (w, y)], fill=(255, 255, 255, 140), width=lw)
    font = _font(max(10, round(26 * k)))
    pad = max(2, round(5 * k))
    labels = cell_labels(rows, cols)
    for r in range(rows):
        for c in range(cols):
            text = labels[r][c]
            x0 = round(c * w / cols) + pad
            y0 = round(r * h / rows) + pad
            tb = d.textbbox((x0 + pad, y0 + pad // 2), text, font=font)
            d.rounded_rectangle(
                (tb[0] - pad, tb[1] - pad // 2 - 1, tb[2] + pad, tb[3] + pad // 2 + 1),
                radius=pad,
                fill=(0, 0, 0, 95),
            )
            d.text((x0 + pad, y0 + pad // 2), text, font=font, fill=(255, 255, 255, 215))
    return Image.alpha_composite(base.convert("RGBA"), layer).convert("RGB")


# ---------------------------------------------------------------- overlay
def render_overlay(
    image: np.ndarray | Image.Image,
    mask: np.ndarray | None,
    points: Sequence[Sequence[Any]] = (),
    *,
    max_side: int = 1280,
    alpha: float = 0.42,
    fill_rgb: tuple[int, int, int] = FILL_RGB,
    contour_rgb: tuple[int, int, int] = CONTOUR_RGB,
    box: Sequence[float] | None = None,
) -> Image.Image:
    """Photo + translucent mask fill + crisp contour + pin markers, sized for a phone.

    ``mask`` is bool (H, W) at the image's size (or ``None``); ``points`` are
    ``(x, y, positive)`` in image pixels: positive pins green, negative red.
    """
    base = _to_pil(image)
    W0, H0 = base.size
    base, s = fit_long_side(base, max_side)
    w, h = base.size
    k = _ui_scale(w, h)
    rgb = np.asarray(base, dtype=np.float32).copy()

    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != (H0, W0):
            raise ValueError(f"mask shape {m.shape} != image shape {(H0, W0)}")
        if (h, w) != m.shape:
            m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BILINEAR)) >= 128
        # Fill: a little darkening outside helps the object pop on a small screen.
        fill = np.asarray(fill_rgb, dtype=np.float32)
        rgb[m] = rgb[m] * (1.0 - alpha) + fill * alpha
        rgb[~m] *= 0.85
        # Contour: boundary band, drawn as halo (wider, dark) then line (bright).
        t = max(1, round(2.0 * k))
        line = _boundary(m, t)
        halo = _boundary(m, t + max(1, round(1.5 * k)))
        rgb[halo] = np.asarray(HALO_RGB, dtype=np.float32)
        rgb[line] = np.asarray(contour_rgb, dtype=np.float32)

    out = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(out)
    if box is not None:
        x0, y0, x1, y1 = (float(v) * s for v in box)
        bw = max(1, round(2 * k))
        d.rectangle((x0, y0, x1, y1), outline=(0, 0, 0), width=bw + 2)
        d.rectangle((x0 + 1, y0 + 1, x1 - 1, y1 - 1), outline=(255, 255, 255), width=bw)
    r = max(7, round(12 * k))
    for p in points:
        x, y, pos = float(p[0]) * s, float(p[1]) * s, bool(p[2])
        col = POS_RGB if pos else NEG_RGB
        d.ellipse((x - r - 2, y - r - 2, x + r + 2, y + r + 2), fill=(0, 0, 0))
        d.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255))
        ri = r - max(2, round(3 * k))
        d.ellipse((x - ri, y - ri, x + ri, y + ri), fill=col)
        # + / - glyph so colour-blind workers can tell the pins apart.
        a = max(2, round(ri * 0.55))
        gw = max(1, round(ri * 0.28))
        d.line((x - a, y, x + a, y), fill=(255, 255, 255), width=gw)
        if pos:
            d.line((x, y - a, x, y + a), fill=(255, 255, 255), width=gw)
    return out


def _boundary(m: np.ndarray, thickness: int) -> np.ndarray:
    """Pixels within ``thickness`` of the mask's edge (both sides, roughly centred)."""
    import cv2

    u = m.astype(np.uint8)
    inner = max(1, thickness // 2)
    outer = max(1, thickness - inner)
    ki = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inner + 1, 2 * inner + 1))
    ko = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * outer + 1, 2 * outer + 1))
    er = cv2.erode(u, ki, borderType=cv2.BORDER_REPLICATE)
    di = cv2.dilate(u, ko, borderType=cv2.BORDER_REPLICATE)
    return (di > 0) & (er == 0)


def overlay_jpeg(
    image: np.ndarray | Image.Image,
    mask: np.ndarray | None,
    points: Sequence[Sequence[Any]] = (),
    *,
    max_side: int = 1280,
    quality: int = 85,
    **kwargs: Any,
) -> bytes:
    """:func:`render_overlay` encoded as JPEG bytes (long side <= ``max_side``)."""
    return to_jpeg(render_overlay(image, mask, points, max_side=max_side, **kwargs), quality)
