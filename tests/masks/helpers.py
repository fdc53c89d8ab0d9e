"""Builders shared by the mask tests: projects over generated shapes, and the cell to tap."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from bot import workers
from bot.autoseg import rle as coco_rle
from bot.autoseg.overlay import cell_center
from bot.db import Database
from bot.sample import SampleImage, generate, true_mask
from bot.tasks import intake, media, projects
from bot.tasks.magic_pin import CELLS
from bot.tasks.models import Project


def make_project(
    db: Database, folder: Path, *, type: str = "magic-pin", count: int = 3, overlap: int = 1, price: int = 10, masks: bool = True
) -> tuple[Project, list[SampleImage]]:
    """Like bot.sandbox.create_mask_project, without needing the emulator importable."""
    samples = generate(folder, count=count, seed=11)
    with db.session() as s:
        project = projects.create(s, name=f"{type}-{folder.name}", type=type, overlap=overlap, price=price, question_en="Q")
        for sample in samples:
            image, _ = media.store_image(s, media.check_image(sample.path), media_dir=None, copy=False)
            mask_json = json.dumps(coco_rle.encode(true_mask(sample))) if type == "confirm-mask" and masks else None
            intake.add_task(s, project, image, external_id=sample.external_id, prelabel=sample.shape, mask_rle=mask_json)
    return project, samples


def make_workers(db: Database, n: int, base: int = 5000) -> list[int]:
    with db.session() as s:
        return [workers.register(s, tg_id=base + i, name=f"w{i}")[0].id for i in range(n)]  # type: ignore[misc]


def depth_of_cells(sample: SampleImage, size: tuple[int, int] = (320, 240)) -> list[tuple[float, int]]:
    """(distance from the cell centre to the shape's edge, cell index), deepest first; 0 outside."""
    inside = true_mask(sample, size).astype(np.uint8)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    w, h = size
    out = []
    for i, cell in enumerate(CELLS):
        x, y = cell_center(cell, w, h)
        out.append((float(depth[int(y), int(x)]), i))
    return sorted(out, reverse=True)


def best_cell(sample: SampleImage) -> int:
    """The cell whose centre is deepest inside the shape (what a careful worker taps)."""
    return depth_of_cells(sample)[0][1]


def outside_cell(sample: SampleImage) -> int:
    """A cell whose centre is on the background."""
    return next(i for d, i in reversed(depth_of_cells(sample)) if d == 0)


def iou_with_truth(mask_json: str, sample: SampleImage) -> float:
    return coco_rle.mask_iou(coco_rle.decode(json.loads(mask_json)), true_mask(sample))
