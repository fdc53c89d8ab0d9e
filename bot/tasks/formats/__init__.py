"""Formats ML teams already use, in and out: COCO detection, YOLO and Label Studio.

Each reader turns a source into the loader's :class:`bot.tasks.datasets.Row` list (so every check
of the loader applies: bad rows named, all-or-nothing, ``--skip-bad``); each writer turns a
project's verified results back into the format (:mod:`bot.tasks.formats.export`). This module
only says which reader a source needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.tasks.formats.common import Selection, csv_cell, image_path

FORMATS = ("csv", "jsonl", "json", "folder", "coco", "yolo", "label-studio")

__all__ = ["FORMATS", "Selection", "csv_cell", "detect", "image_path", "read"]


def _json(source: Path) -> Any:
    from bot.tasks.datasets import json_document

    return json_document(source)


def detect(source: Path, data: Any = None) -> str | None:
    """``yolo``, ``label-studio`` or ``coco-results`` when the source is one; None: the loader's own formats."""
    from bot.tasks.formats import label_studio, yolo

    if yolo.is_yolo(source):
        return "yolo"
    if data is not None:
        if label_studio.is_label_studio(data):
            return "label-studio"
        if isinstance(data, list) and data and all(isinstance(d, dict) and "bbox" in d and "image_id" in d for d in data[:20]):
            return "coco-results"
    return None


def read(
    source: Path,
    fmt: str,
    *,
    project_type: str,
    images_root: Path | None = None,
    coco_gt: Path | None = None,
    data: Any = None,
    allow_outside: Sequence[Path] = (),
) -> tuple[list[Any], list[Any]]:
    """Rows and problems of a COCO detection, YOLO or Label Studio source."""
    from bot.tasks.datasets import DatasetError
    from bot.tasks.formats import coco_det, label_studio, yolo

    if fmt == "yolo":
        return yolo.read(source, allow_outside)
    if source.is_dir():
        raise DatasetError(f"{source.name}: a {fmt} source is a .json file")
    if data is None:
        data = _json(source)
    if fmt in ("coco", "coco-results"):
        gt = _json(coco_gt) if coco_gt is not None else None
        return coco_det.read(source, data, images_root=images_root, gt=gt, allow_outside=allow_outside)
    if fmt == "label-studio":
        return label_studio.read(source, data, project_type=project_type, images_root=images_root, allow_outside=allow_outside)
    raise DatasetError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
