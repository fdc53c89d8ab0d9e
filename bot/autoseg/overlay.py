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
    "render_candidates",
    "render_overlay",
    "to_jpeg",
]

FILL_RGB = (0, 200, 255)  # translucent fill: cyan reads well on most photos
CONTOUR_RGB = (255, 230, 0)  # bright yellow line ...
HALO_RGB = (0, 0, 0)  # ... with a dark halo so it is crisp on light and dark areas
POS_RGB = (40, 200, 60)
NEG_RGB = (230, 40, 40)

# Candidate masks, in the order of their numbers: Okabe–Ito yellow, sky blue and vermillion.
# Of the Okabe–Ito colours, this triple stays furthest apart under simulated protanopia,
# deuteranopia and tritanopia (Machado et al. 2009; worst pair ΔE 34, deutan vermillion/yellow,
# which still differ in lightness), and all three are bright enough to read on a dark halo.
# The numbers carry the identity; the colours only make it quicker.
CANDIDATE_RGB: tuple[tuple[int, int, int], ...] = ((240, 228, 66), (86, 180, 233), (213, 94, 0))
CANDIDATE_MARKS = ("🟨", "🟦", "🟧")  # the same colours on the buttons (emoji squares)
# What the pictures are sized for: a photo in a chat on a 360-px-wide phone is about 320 px
# wide (a tall one about 480 px high). Candidate outlines and numbers are sized in those pixels.
PHONE_PHOTO_WIDTH = 320
PHONE_PHOTO_HEIGHT = 480


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
    _draw_pins(d, points, s, k)
    return out


def phone_unit(width: int, height: int) -> float:
    """Picture pixels per screen pixel when the picture is shown in a chat on a small phone."""
    return max(width / PHONE_PHOTO_WIDTH, height / PHONE_PHOTO_HEIGHT)


def _fit_mask(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    m = np.asarray(m, dtype=bool)
    if m.shape == (h, w):
        return m
    return np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BILINEAR)) >= 128


def _label_spot(
    contour: np.ndarray | None, avoid: np.ndarray, placed: list[tuple[float, float]], radius: float, w: int, h: int
) -> tuple[float, float]:
    """Where a candidate's number goes: a disc just outside its own outline (touching it, so it
    neither hides a small object nor floats away from its line), as far as possible from the
    other outlines (``avoid``: distance to them, per pixel) and from numbers already placed,
    with the whole disc inside the picture. Deterministic: ties go to the first contour point."""
    if contour is None or len(contour) == 0:
        return (w / 2.0, h / 2.0)
    pts = contour.reshape(-1, 2).astype(np.float64)
    centre = pts.mean(axis=0)
    away = pts - centre
    away /= np.maximum(np.hypot(away[:, 0], away[:, 1]), 1e-6)[:, None]
    spots = pts + away * (0.8 * radius)
    xs = np.clip(spots[:, 0], radius, w - 1 - radius)
    ys = np.clip(spots[:, 1], radius, h - 1 - radius)
    off = np.hypot(xs - spots[:, 0], ys - spots[:, 1])  # how far the picture's edge pushed the disc
    score = np.minimum(avoid[ys.astype(int), xs.astype(int)], 2.0 * radius) - 2.0 * off
    for px, py in placed:
        score += np.minimum(np.hypot(xs - px, ys - py), 3.0 * radius) - 3.0 * radius
    best = int(np.argmax(score))
    return (float(xs[best]), float(ys[best]))


def render_candidates(
    image: np.ndarray | Image.Image,
    masks: Sequence[np.ndarray],
    points: Sequence[Sequence[Any]] = (),
    *,
    max_side: int = 1280,
    alpha: float = 0.22,
    colours: Sequence[tuple[int, int, int]] = CANDIDATE_RGB,
    numbers: Sequence[int] | None = None,
) -> Image.Image:
    """Photo + up to ``len(colours)`` candidate masks, each with a light fill, an outline in its
    own colour and its number (1, 2, 3 in the order given, or ``numbers``: one candidate drawn
    alone keeps the number and colour it had among the others) on a disc sitting on its outline.

    Sized for a photo shown about 320 px wide on a phone (:func:`phone_unit`): outlines are 3-6
    screen pixels with a dark halo, numbers about 17 px on 26-px discs. Larger masks are drawn
    first with wider lines, so where two outlines run together both colours stay visible.
    ``masks`` are bool (H, W) at the image's size; ``points`` as in :func:`render_overlay`.
    """
    import cv2

    if len(masks) > len(colours):
        raise ValueError(f"at most {len(colours)} candidates can be drawn, got {len(masks)}")
    labels = [str(n) for n in numbers] if numbers is not None else [str(i + 1) for i in range(len(masks))]
    if len(labels) != len(masks):
        raise ValueError(f"{len(labels)} numbers for {len(masks)} candidates")
    base = _to_pil(image)
    W0, H0 = base.size
    base, s = fit_long_side(base, max_side)
    w, h = base.size
    u = phone_unit(w, h)
    ms: list[np.ndarray] = []
    for m in masks:
        if np.asarray(m).shape != (H0, W0):
            raise ValueError(f"mask shape {np.asarray(m).shape} != image shape {(H0, W0)}")
        ms.append(_fit_mask(m, (w, h)))
    photo = np.asarray(base)
    union = np.zeros((h, w), bool)
    for m in ms:
        union |= m
    out = cv2.convertScaleAbs(photo, alpha=0.88)  # a little darker outside, so the marks stand out
    np.copyto(out, photo, where=union[:, :, None])
    order = sorted(range(len(ms)), key=lambda i: (-int(np.count_nonzero(ms[i])), i))  # largest first
    for i in order:  # whole-image blends in OpenCV, kept where the mask is: faster than indexing
        tinted = cv2.addWeighted(out, 1.0 - alpha, np.full_like(out, colours[i]), alpha, 0.0)
        np.copyto(out, tinted, where=ms[i][:, :, None])
    # Lines: anti-aliased only where the phone shows the picture near 1:1 (thick AA lines cost).
    line_type = cv2.LINE_AA if u < 2 else cv2.LINE_8
    halo = max(1, round(1.5 * u))
    for rank, i in enumerate(order):
        found, _ = cv2.findContours(ms[i].astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        width = max(1, round((3.0 + 1.5 * (len(order) - 1 - rank)) * u))
        cv2.drawContours(out, found, -1, HALO_RGB, width + 2 * halo, line_type)
        cv2.drawContours(out, found, -1, colours[i], width, line_type)

    pil = Image.fromarray(out, "RGB")
    d = ImageDraw.Draw(pil)
    _draw_pins(d, points, s, _ui_scale(w, h))
    radius = 13.0 * u
    font = _font(max(8, round(17 * u)))
    ring = max(1, round(1.5 * u))
    for i, (x, y) in enumerate(_label_spots(ms, radius, max(1, int(u)))):
        d.ellipse((x - radius - ring, y - radius - ring, x + radius + ring, y + radius + ring), fill=HALO_RGB)
        d.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colours[i])
        d.text((x, y), labels[i], font=font, fill=HALO_RGB, anchor="mm")
    return pil


def _label_spots(masks: Sequence[np.ndarray], radius: float, step: int) -> list[tuple[float, float]]:
    """Centres of the candidates' numbers (see :func:`_label_spot`), worked out on every
    ``step``-th pixel: about phone resolution, which is all the placement needs."""
    import cv2

    h, w = masks[0].shape
    small = [np.ascontiguousarray(m[::step, ::step]).astype(np.uint8) for m in masks]
    outlines = [cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)[0] for m in small]
    placed: list[tuple[float, float]] = []
    for i in range(len(masks)):
        others = np.full(small[0].shape, 255, np.uint8)
        for j, found in enumerate(outlines):
            if j != i:
                cv2.drawContours(others, found, -1, 0, 1)
        avoid = cv2.distanceTransform(others, cv2.DIST_L2, 3)
        outer = max(outlines[i], key=len) if outlines[i] else None
        x, y = _label_spot(outer, avoid, [(px / step, py / step) for px, py in placed], radius / step, *small[0].shape[::-1])
        placed.append((min(max(x * step, radius), w - 1 - radius), min(max(y * step, radius), h - 1 - radius)))
    return placed


def _draw_pins(d: ImageDraw.ImageDraw, points: Sequence[Sequence[Any]], s: float, k: float) -> None:
    """Pins as white-ringed discs: green with "+" (positive), red with "−" (negative)."""
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
