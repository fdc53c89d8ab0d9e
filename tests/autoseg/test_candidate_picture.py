"""The candidates picture is legible on a phone: checked on the pixels a small phone shows.

A photo in a chat on a 360-px-wide phone is about 320 px wide (a tall one about 480 px high).
The picture goes through the same JPEG encoding as the bot's, is shrunk to that size, and then
each candidate's outline must be visible in its own colour along its whole length (with a dark
halo, so it also shows on light photos), and its number must sit on that outline on a disc of
its colour, large enough to read and recognisably the right digit.
"""

from __future__ import annotations

import io
import itertools

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from bot.autoseg import overlay
from bot.autoseg.overlay import CANDIDATE_RGB, PHONE_PHOTO_HEIGHT, PHONE_PHOTO_WIDTH, render_candidates, to_jpeg


def scene(width: int, height: int, light: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """A textured photo with an object and three nested candidates: the object, the object grown
    by ~4 % of the short side, and a box around both (best first)."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (200 if light else 45) + 30 * np.sin(xx / 37.0) * np.cos(yy / 53.0)
    rgb = np.clip(base[..., None] + rng.normal(0, 12, (height, width, 3)), 0, 255)
    rgb[..., 2] += 15 if light else 5
    cx, cy, short = width * 0.45, height * 0.55, min(width, height)
    obj = ((xx - cx) / (0.18 * short)) ** 2 + ((yy - cy) / (0.13 * short)) ** 2 <= 1
    rgb[obj] = rgb[obj] * 0.5 + np.array([150, 110, 70]) * 0.5
    grown = cv2.dilate(obj.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(0.09 * short),) * 2)) > 0
    ys, xs = np.nonzero(grown)
    pad = int(0.06 * short)
    box = np.zeros_like(obj)
    box[ys.min() - pad : ys.max() + pad, xs.min() - pad : xs.max() + 2 * pad] = True
    return np.clip(rgb, 0, 255).astype(np.uint8), [obj, grown, box]


def on_phone(picture: Image.Image) -> tuple[np.ndarray, float]:
    """The picture as a phone shows it (JPEG as the bot sends it, then shrunk); and the scale."""
    sent = Image.open(io.BytesIO(to_jpeg(picture))).convert("RGB")
    scale = min(PHONE_PHOTO_WIDTH / sent.width, PHONE_PHOTO_HEIGHT / sent.height)
    size = (round(sent.width * scale), round(sent.height * scale))
    return np.asarray(sent.resize(size, Image.Resampling.LANCZOS), dtype=np.int16), scale


def _shrink(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA) >= 0.5


def _edge(mask: np.ndarray) -> np.ndarray:
    return mask & ~(cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0)


def _near(found: np.ndarray, radius: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(found.astype(np.uint8), k) > 0


def _close_to(phone: np.ndarray, colour: tuple[int, int, int], tol: int) -> np.ndarray:
    return np.abs(phone - np.asarray(colour)).max(axis=2) < tol


def _digit_templates(size: int) -> dict[int, np.ndarray]:
    out = {}
    for d in (1, 2, 3):
        img = Image.new("L", (size * 2, size * 2), 0)
        ImageDraw.Draw(img).text((size, size), str(d), font=overlay._font(size), fill=255, anchor="mm")
        out[d] = _crop_to_ink(np.asarray(img) > 127)
    return out


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(ink)
    return ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _same_size(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(a.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def _read_digit(glyph: np.ndarray, templates: dict[int, np.ndarray]) -> int:
    """The digit whose rendering correlates best with ``glyph`` (both scaled to one box)."""
    scores = {}
    for d, tpl in templates.items():
        a, b = _same_size(glyph, (24, 16)), _same_size(tpl, (24, 16))
        a, b = a - a.mean(), b - b.mean()
        scores[d] = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))
    return max(scores, key=lambda d: scores[d])


@pytest.mark.parametrize(("width", "height"), [(1280, 960), (960, 1280), (640, 480)])
@pytest.mark.parametrize("light", [True, False], ids=["light", "dark"])
def test_outlines_and_numbers_are_legible_at_phone_size(width: int, height: int, light: bool) -> None:
    rgb, masks = scene(width, height, light)
    phone, _ = on_phone(render_candidates(rgb, masks, [(width * 0.45, height * 0.55, True)]))
    shape = phone.shape[:2]
    assert shape[1] <= PHONE_PHOTO_WIDTH and shape[0] <= PHONE_PHOTO_HEIGHT
    dark = phone.max(axis=2) < 90
    templates = _digit_templates(40)
    for i, colour in enumerate(CANDIDATE_RGB):
        edge = _edge(_shrink(masks[i], shape))
        ys, xs = np.nonzero(edge)
        inside = (ys > 2) & (ys < shape[0] - 3) & (xs > 2) & (xs < shape[1] - 3)
        coloured = _near(_close_to(phone, colour, 60), 2)[ys, xs][inside]
        assert coloured.mean() > 0.85, f"outline {i + 1}: only {coloured.mean():.0%} of it shows its colour"
        haloed = _near(dark, 5)[ys, xs][inside]  # the widest line is 6 px: its halo starts 3 px out
        assert haloed.mean() > 0.85, f"outline {i + 1}: only {haloed.mean():.0%} of it has a dark edge"

        # the number: a disc of the candidate's colour (lines are thinner than the opening)
        solid = _close_to(phone, colour, 60).astype(np.uint8)
        filled = solid.copy()
        contours, hierarchy = cv2.findContours(solid, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        holes = [c for c, h in zip(contours, hierarchy[0]) if h[3] >= 0 and cv2.contourArea(c) < 400]
        cv2.drawContours(filled, holes, -1, 1, cv2.FILLED)  # small holes (the digit) filled in
        discs = cv2.morphologyEx(filled, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11)))
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(discs)
        assert n >= 2, f"number {i + 1}: no disc of its colour"
        big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        x, y, w, h = (int(v) for v in stats[big, :4])
        assert 20 <= w <= 40 and 20 <= h <= 40 and 0.8 < w / h < 1.25, f"number {i + 1}: disc {w}x{h} px"
        cx, cy = centroids[big]
        ey, ex = np.nonzero(edge)
        assert np.hypot(ex - cx, ey - cy).min() <= 0.75 * w, f"number {i + 1} is not on its outline"
        ink = dark[y : y + h, x : x + w] & (labels[y : y + h, x : x + w] == big)
        assert ink.sum() > 20, f"number {i + 1}: no glyph on the disc"
        glyph = _crop_to_ink(ink)
        assert glyph.shape[0] >= 11, f"number {i + 1}: glyph only {glyph.shape[0]} px high"
        assert _read_digit(glyph, templates) == i + 1


def test_a_coloured_photo_does_not_hide_the_outlines() -> None:
    """A photo of the candidates' own colours (a yellow and blue scene): the dark halo still
    separates every outline from the photo."""
    rgb, masks = scene(1280, 960, light=True)
    rgb[:, :640] = CANDIDATE_RGB[0]
    rgb[:, 640:] = CANDIDATE_RGB[1]
    phone, _ = on_phone(render_candidates(rgb, masks))
    shape = phone.shape[:2]
    dark = phone.max(axis=2) < 90
    for i in range(3):
        ys, xs = np.nonzero(_edge(_shrink(masks[i], shape)))
        inside = (ys > 2) & (ys < shape[0] - 3) & (xs > 2) & (xs < shape[1] - 3)
        assert _near(dark, 5)[ys, xs][inside].mean() > 0.85


# Machado, Oliveira & Fernandes (2009), severity 1.0: how the colours look to people with
# protanopia, deuteranopia and tritanopia.
_CVD = {
    "normal": np.eye(3),
    "protan": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]),
    "deutan": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]),
    "tritan": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]),
}


def _lab(rgb: tuple[int, int, int], vision: str) -> np.ndarray:
    c = np.asarray(rgb) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    linear = np.clip(_CVD[vision] @ linear, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    f = np.cbrt(xyz / np.array([0.95047, 1.0, 1.08883]))
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("vision", list(_CVD))
def test_candidate_colours_stay_apart_for_colour_blind_workers(vision: str) -> None:
    for a, b in itertools.combinations(CANDIDATE_RGB, 2):
        assert np.linalg.norm(_lab(a, vision) - _lab(b, vision)) > 30, (vision, a, b)


def test_one_two_or_three_candidates_and_no_more() -> None:
    rgb, masks = scene(640, 480, light=True)
    for count in (1, 2, 3):
        picture = render_candidates(rgb, masks[:count])
        assert picture.size == (640, 480)
        drawn = np.asarray(picture, dtype=np.int16)
        for i in range(count):
            assert _close_to(drawn, CANDIDATE_RGB[i], 40).sum() > 200
        for i in range(count, 3):
            assert _close_to(drawn, CANDIDATE_RGB[i], 40).sum() < 50
    empty = np.zeros((480, 640), bool)
    assert render_candidates(rgb, [masks[0], empty]).size == (640, 480)  # an empty one does not break it
    with pytest.raises(ValueError, match="at most 3"):
        render_candidates(rgb, [*masks, masks[0]])
    with pytest.raises(ValueError, match="shape"):
        render_candidates(rgb, [np.zeros((10, 10), bool)])
