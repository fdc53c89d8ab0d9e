"""Label Studio JSON (an export, or a task file to import) in; the crowd's verdicts out.

What a task's results become depends on the project: ``rectanglelabels`` → confirm-box (one task
per rectangle), ``choices`` → classify with the choice as the suggested label, ``polygonlabels``
and ``brushlabels`` → confirm-mask. Results come from the task's ``predictions`` (the model's),
else from its first annotation that was not cancelled. Each imported task keeps the Label Studio
task's ``id``, ``data`` and the original result, so the export puts the crowd's verdicts as
``annotations`` beside the original ``predictions`` and the file imports back into Label Studio.

Parsed by hand: Label Studio's own converter (``label-studio-sdk``) is far too large for the
bot's install (see the README); the tests check what is read and written against it when it is
installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bot.tasks.datasets import DatasetError, Problem, Row
from bot.tasks.formats.common import declared_size, image_path
from bot.tasks.models import ProjectType

RESULT_TYPES = {
    ProjectType.CONFIRM_BOX.value: ("rectanglelabels",),
    ProjectType.CLASSIFY.value: ("choices",),
    ProjectType.CONFIRM_MASK.value: ("polygonlabels", "brushlabels"),
}


def is_label_studio(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and all(isinstance(t, dict) and isinstance(t.get("data"), dict) for t in data[:20])


def _image_ref(data: dict[str, Any], to_name: str | None) -> str | None:
    for key in (to_name, "image", "img", "url"):
        value = data.get(key) if key else None
        if isinstance(value, str) and value.strip():
            return value
    for value in data.values():
        if isinstance(value, str) and value.strip():
            return value
    return None


def _results(task: dict[str, Any]) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """("predictions" | "annotations", results, meta of the prediction: model_version, score)."""
    for pred in task.get("predictions") or []:
        if isinstance(pred, dict) and isinstance(pred.get("result"), list) and pred["result"]:
            meta = {k: pred[k] for k in ("model_version", "score") if pred.get(k) is not None}
            return "predictions", [r for r in pred["result"] if isinstance(r, dict)], meta
    for ann in task.get("annotations") or []:
        if isinstance(ann, dict) and not ann.get("was_cancelled") and isinstance(ann.get("result"), list):
            return "annotations", [r for r in ann["result"] if isinstance(r, dict)], {}
    return "", [], {}


def decode_brush_rle(rle: list[int], height: int, width: int) -> np.ndarray:
    """Label Studio's brush RLE (bit-packed runs of RGBA bytes) → a boolean (H, W) mask of its alpha."""
    data = np.asarray(rle, dtype=np.uint8)
    bits = np.unpackbits(data)
    pos = 0

    def take(n: int) -> int:
        nonlocal pos
        if pos + n > bits.size:
            raise ValueError("brush RLE ends early")
        chunk = bits[pos : pos + n]
        pos += n
        return int("".join("1" if b else "0" for b in chunk), 2) if n else 0

    total = take(32)
    if total != height * width * 4:
        raise ValueError(f"brush RLE is for {total} values, the image needs {height * width * 4}")
    word = take(5) + 1
    sizes = [take(4) + 1 for _ in range(4)]
    out = np.zeros(total, dtype=np.uint8)
    i = 0
    while i < total:
        repeat = take(1)
        j = i + 1 + take(sizes[take(2)])
        if j > total:
            raise ValueError("brush RLE runs past the image")
        if repeat:
            out[i:j] = take(word)
            i = j
        else:
            while i < j:
                out[i] = take(word)
                i += 1
    return out.reshape(height, width, 4)[:, :, 3] > 0


def _mask(item: dict[str, Any]) -> Any:
    """A confirm-mask row's mask from a polygon (pixels, COCO layout) or a brush (RLE dict)."""
    value = item.get("value") or {}
    w, h = item.get("original_width"), item.get("original_height")
    if not isinstance(w, int) or not isinstance(h, int):
        raise ValueError("result has no original_width / original_height")
    if item.get("type") == "polygonlabels":
        points = value.get("points")
        if not isinstance(points, list) or len(points) < 3:
            raise ValueError("polygon needs at least 3 points")
        try:
            flat = [float(c) * (w if k == 0 else h) / 100 for p in points for k, c in enumerate(p[:2])]
        except (TypeError, ValueError, IndexError):
            raise ValueError("polygon points must be [x%, y%] pairs") from None
        return ("polygons", [flat])
    if value.get("format") != "rle" or not isinstance(value.get("rle"), list):
        raise ValueError("brush result needs format 'rle' and an 'rle' list")
    from bot.autoseg import rle

    mask = decode_brush_rle(value["rle"], h, w)
    return rle.encode(mask)


def read(
    path: Path, data: Any, *, project_type: str, images_root: Path | None = None, allow_outside: Sequence[Path] = ()
) -> tuple[list[Row], list[Problem]]:
    name = path.name
    if not isinstance(data, list):
        raise DatasetError(f"{name}: a Label Studio file is a JSON list of tasks")
    wanted = RESULT_TYPES.get(project_type)
    if wanted is None:
        raise DatasetError(f"{name}: Label Studio results make confirm-box, classify or confirm-mask tasks, not {project_type}")
    rows: list[Row] = []
    problems: list[Problem] = []
    other_types: set[str] = set()
    paths: dict[str, Path] = {}  # a task holds many results: resolve its image once
    for index, task in enumerate(data, start=1):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            problems.append(Problem(name, index, "a task needs a 'data' object"))
            continue
        task_id = task.get("id", index)
        origin, results, meta = _results(task)
        mine = [r for r in results if r.get("type") in wanted]
        other_types.update(str(r.get("type")) for r in results if r.get("type") not in wanted)
        if project_type == ProjectType.CLASSIFY:
            mine = mine[:1]  # one question per image
        for item in mine:
            ref = _image_ref(task["data"], item.get("to_name"))
            if ref is None:
                problems.append(Problem(name, index, f"task {task_id}: 'data' names no image"))
                break
            try:
                where = paths.get(ref) or paths.setdefault(ref, image_path(path.parent, ref, images_root, allow_outside))
                row = _row(item, task, task_id, origin, meta, name=name, index=index, ref=ref, where=where)
            except ValueError as exc:
                problems.append(Problem(name, index, f"task {task_id}, result {item.get('id', '?')}: {exc}"))
                continue
            rows.append(row)
    if not rows and not problems and other_types:
        raise DatasetError(
            f"{name}: no {' or '.join(wanted)} results for a {project_type} project (found: {', '.join(sorted(other_types))})"
        )
    return rows, problems


def _row(
    item: dict[str, Any],
    task: dict[str, Any],
    task_id: Any,
    origin: str,
    meta: dict[str, Any],
    *,
    name: str,
    index: int,
    ref: str,
    where: Path,
) -> Row:
    value = item.get("value")
    if not isinstance(value, dict):
        raise ValueError("result has no 'value'")
    kind = str(item.get("type"))
    labels = value.get(kind)
    if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
        raise ValueError(f"result has no {kind} label")
    score = item.get("score", meta.get("score"))
    if score is not None and not isinstance(score, (int, float)):
        raise ValueError(f"score {score!r} is not a number")
    src = {
        "fmt": "label-studio",
        "task": task_id,
        "data": task["data"],
        "origin": origin,
        "result": item,
        **({"meta": meta} if meta else {}),
    }
    declared = declared_size(item, "original_width", "original_height")
    row = Row(
        file=name,
        row=index,
        image=ref,
        image_path=where,
        external_id=f"ls{task_id}" if kind == "choices" else f"ls{task_id}#{item.get('id', index)}",
        prelabel=labels[0],
        declared_size=declared,
        score=None if score is None else float(score),
        src=src,
    )
    if kind == "rectanglelabels":
        if value.get("rotation"):
            raise ValueError("rotated rectangles are not supported")
        row.box = ("pct", [value.get("x"), value.get("y"), value.get("width"), value.get("height")])
    elif kind in ("polygonlabels", "brushlabels"):
        row.mask = _mask(item)
    return row
