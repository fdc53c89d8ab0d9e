"""A small sample project the sandbox generates itself (no third-party images to license):
coloured shapes on a noisy background, with the true class known for every image."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle")
SHAPE_NAMES = {"ko": ("동그라미", "네모", "세모"), "en": SHAPES}


@dataclass(frozen=True, slots=True)
class SampleImage:
    path: Path
    external_id: str
    shape: str
    bbox: tuple[int, int, int, int]


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)


def make_image(rng: random.Random, shape: str, size: tuple[int, int] = (320, 240)) -> tuple[PILImage.Image, tuple[int, int, int, int]]:
    w, h = size
    bg = tuple(rng.randint(150, 235) for _ in range(3))
    img = PILImage.new("RGB", size, bg)
    noise = PILImage.effect_noise(size, 24).convert("RGB")
    img = PILImage.blend(img, noise, 0.25)
    side = rng.randint(min(w, h) // 3, int(min(w, h) * 0.6))
    x0 = rng.randint(8, w - side - 8)
    y0 = rng.randint(8, h - side - 8)
    box = (x0, y0, x0 + side, y0 + side)
    fill = (rng.randint(10, 120), rng.randint(10, 120), rng.randint(10, 120))
    draw_shape(ImageDraw.Draw(img), shape, box, fill)
    return img.filter(ImageFilter.SMOOTH), box


def generate(folder: Path, count: int = 30, seed: int = 7) -> list[SampleImage]:
    """Write ``count`` JPEGs into ``folder`` (deterministic for a seed); returns their truth."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out = []
    for i in range(count):
        shape = SHAPES[i % len(SHAPES)]
        img, box = make_image(rng, shape)
        path = folder / f"shape_{i:03d}.jpg"
        img.save(path, "JPEG", quality=90)
        out.append(SampleImage(path=path, external_id=f"shape_{i:03d}", shape=shape, bbox=box))
    return out


def true_mask(sample: SampleImage, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    """The exact object mask of a generated image (bool (H, W)): the same drawing on black.

    The saved JPEG is smoothed after drawing, so edges in the photo are a pixel soft; this mask is
    the shape as drawn, which is what a careful annotator would outline.
    """
    canvas = PILImage.new("L", size, 0)
    draw_shape(ImageDraw.Draw(canvas), sample.shape, sample.bbox, 255)  # type: ignore[arg-type]
    return np.asarray(canvas) >= 128


def deepest_cell(sample: SampleImage, size: tuple[int, int] = (320, 240)) -> str:
    """The 4×4 grid cell (``"A1"``..``"D4"``) whose centre lies deepest inside the shape: the
    cell a careful Magic Pin worker taps (simulated workers of the demo tap it)."""
    import cv2

    from bot.autoseg.overlay import cell_center
    from bot.tasks.magic_pin import CELLS

    depth = cv2.distanceTransform(true_mask(sample, size).astype(np.uint8), cv2.DIST_L2, 5)
    w, h = size
    return max(CELLS, key=lambda cell: float(depth[int(cell_center(cell, w, h)[1]), int(cell_center(cell, w, h)[0])]))
