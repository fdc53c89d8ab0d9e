"""Builders for the admin tests: images, manifests, COCO files, answers."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage

from bot import clock, workers
from bot.autoseg import rle
from bot.db import Database
from bot.sample import SampleImage, generate, true_mask
from bot.tasks import projects, service
from bot.tasks.models import Project
from bot.work import answers


def jpeg(path: Path, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    """A small JPEG whose pixels depend on ``seed`` (different seeds: different content hash)."""
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(array).save(path, "JPEG", quality=80)
    return path


def png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header claims a huge size (a decompression bomb; never decode it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b"")
    path.write_bytes(body)
    return path


def classify_project(db: Database, name: str = "cats", labels: Sequence[str] = ("cat", "dog"), **fields: Any) -> Project:
    with db.session() as s:
        return projects.create(s, name=name, labels=list(labels), **fields)


def mask_project(db: Database, name: str = "masks", type: str = "confirm-mask", **fields: Any) -> Project:
    with db.session() as s:
        return projects.create(s, name=name, type=type, **fields)


def polygons_of(mask: np.ndarray) -> list[list[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [[float(v) for v in c.reshape(-1)] for c in contours if len(c) >= 3]


def coco_file(folder: Path, samples: Sequence[SampleImage], *, rle_every: int = 2, uncompressed: bool = False) -> tuple[Path, dict]:
    """A COCO file over generated shape images: every ``rle_every``-th annotation as RLE
    (compressed string, or the uncompressed ``counts`` list), the others as polygons."""
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(("circle", "square", "triangle"))]
    cat_id = {c["name"]: c["id"] for c in categories}
    images, annotations = [], []
    for i, sample in enumerate(samples):
        rel = sample.path.relative_to(folder).as_posix()
        images.append({"id": 100 + i, "file_name": rel, "width": 320, "height": 240})
        mask = true_mask(sample)
        if rle_every and i % rle_every == 0:
            encoded = rle.encode(mask)
            if uncompressed:
                encoded = {"size": encoded["size"], "counts": rle.string_to_counts(encoded["counts"])}
            segmentation: Any = encoded
        else:
            segmentation = polygons_of(mask)
        annotations.append(
            {"id": 500 + i, "image_id": 100 + i, "category_id": cat_id[sample.shape], "segmentation": segmentation, "iscrowd": 0}
        )
    data = {"images": images, "annotations": annotations, "categories": categories}
    path = folder / "annotations.json"
    path.write_text(json.dumps(data))
    return path, data


def samples(folder: Path, count: int = 4, seed: int = 7) -> list[SampleImage]:
    return generate(folder, count=count, seed=seed)


def answer_all(db: Database, n_workers: int, choose: Any, *, seconds: float = 3.0, tg_base: int = 7000) -> list[int]:
    """Workers take and answer every task they can, each answer ``seconds`` after its lease."""
    ids = []
    with db.session() as s:
        for i in range(n_workers):
            ids.append(workers.register(s, tg_id=tg_base + i, name=f"worker{i}")[0].id)
    for wid in ids:
        while True:
            card = db.call(service.next_task, wid)
            if isinstance(card, service.NoTask):
                break
            clock.advance(seconds)
            result = db.call(answers.submit_answer, wid, card.assignment_id, choose(card, wid), mask_rle=None)
            assert isinstance(result, service.Submitted), result
    return ids


def shift_clock(hours: float) -> None:
    clock.advance(timedelta(hours=hours).total_seconds())
