"""COCO detection: ground truth (``instances_*.json``) or a results file (``[{image_id,
category_id, bbox, score}]`` with the ground truth's ``images`` and ``categories`` beside it),
one confirm-box task per box; and the verified boxes written back as COCO.

Parsed by hand (a few dozen lines of dictionaries); what is written is read back with
``pycocotools`` in the tests, the reference every COCO tool agrees with.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.tasks.datasets import DatasetError, Problem, Row, clean_text, coco_refs
from bot.tasks.formats.common import declared_size, image_path


def _index(name: str, data: dict[str, Any]) -> tuple[dict[Any, dict[str, Any]], dict[Any, str]]:
    images = data.get("images")
    categories = data.get("categories")
    if not isinstance(images, list) or not isinstance(categories, list):
        raise DatasetError(f"{name}: a COCO detection file needs 'images' and 'categories' lists")
    by_id = {e["id"]: e for e in images if isinstance(e, dict) and "id" in e}
    names = {c.get("id"): str(c.get("name", "")).strip() for c in categories if isinstance(c, dict)}
    return by_id, names


def read(
    path: Path,
    data: Any,
    *,
    images_root: Path | None = None,
    gt: dict[str, Any] | None = None,
    allow_outside: Sequence[Path] = (),
) -> tuple[list[Row], list[Problem]]:
    """Rows of a COCO detection file; ``gt`` gives ``images``/``categories`` to a results list."""
    name = path.name
    if isinstance(data, list):
        if gt is None:
            raise DatasetError(f"{name}: a COCO results list has no image file names; give the ground truth with --coco-gt")
        images, categories = _index(name, gt)
        annotations: Any = data
    elif isinstance(data, dict):
        images, categories = _index(name, data)
        annotations = data.get("annotations")
        if not isinstance(annotations, list):
            raise DatasetError(f"{name}: a COCO detection file needs an 'annotations' list")
    else:
        raise DatasetError(f"{name}: not a COCO detection file")
    rows: list[Row] = []
    problems: list[Problem] = []
    paths: dict[str, Path] = {}  # an image holds many boxes: resolve its path once
    for index, ann in enumerate(annotations, start=1):
        refs = coco_refs(name, index, ann, images, categories, problems)
        if refs is None:
            continue
        label, image, file_name, category = refs
        ann_id = ann.get("id", index)
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            problems.append(Problem(name, index, f"{label}: has no bbox [x, y, width, height]"))
            continue
        score = ann.get("score")
        if score is not None and not isinstance(score, (int, float)):
            problems.append(Problem(name, index, f"{label}: score {score!r} is not a number"))
            continue
        try:
            where = paths.get(file_name) or paths.setdefault(file_name, image_path(path.parent, file_name, images_root, allow_outside))
        except ValueError as exc:  # outside the dataset's folder, or not a regular file
            problems.append(Problem(name, index, f"{label}: {exc}"))
            continue
        declared = declared_size(image)
        rows.append(
            Row(
                file=name,
                row=index,
                image=file_name,
                image_path=where,
                external_id=f"{file_name}#{ann_id}",
                prelabel=category,
                golden=clean_text(ann.get("golden")),
                declared_size=declared,
                box=("px", bbox),
                score=None if score is None else float(score),
                src={"fmt": "coco", "image_id": image.get("id"), "category_id": ann.get("category_id"), "ann_id": ann_id},
            )
        )
    return rows, problems
