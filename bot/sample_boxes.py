"""Generated detection data with known truth: photos of shapes, the true boxes, and a "model's"
predictions of which a known share is right, has a wrong box or has a wrong class.

Used by the confirm-box tests, the validation-round benchmark and the sandbox; the writers
produce the three formats the loader reads (COCO detection, YOLO, Label Studio) the way those
tools lay them out.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from bot.sample import draw_shape

CLASSES = ("circle", "square", "triangle")
COLOURS = ((220, 60, 60), (60, 160, 70), (60, 90, 210), (230, 170, 40))
RIGHT, WRONG_BOX, WRONG_CLASS = "correct", "wrong_box", "wrong_class"


@dataclass(slots=True)
class Pred:
    """One predicted box on one image, with what it really is."""

    image: str  # file name relative to the dataset folder
    width: int
    height: int
    label: str
    box: tuple[float, float, float, float]  # x, y, w, h in pixels
    score: float
    truth: str  # RIGHT / WRONG_BOX / WRONG_CLASS
    true_label: str
    true_box: tuple[float, float, float, float]


def generate(
    folder: Path,
    images: int,
    *,
    per_image: int = 3,
    size: tuple[int, int] = (320, 240),
    shares: tuple[float, float] = (0.15, 0.15),
    seed: int = 7,
    small_every: int = 5,
) -> list[Pred]:
    """``images`` JPEGs under ``folder/images`` with ``per_image`` shapes each and one prediction
    per shape: a share ``shares[0]`` with a wrong box (shifted by most of its size), ``shares[1]``
    with a wrong class, the rest right (a jitter of a pixel or two). Every ``small_every``-th
    shape is small (about 12 px), to exercise the zoomed inset."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    w, h = size
    preds: list[Pred] = []
    n = 0
    for i in range(images):
        name = f"img{i:05d}.jpg"
        background = (rng.randint(200, 250), rng.randint(200, 250), rng.randint(200, 250))
        img = Image.new("RGB", size, background)
        draw = ImageDraw.Draw(img)
        for _ in range(per_image):
            n += 1
            side = rng.randint(10, 14) if small_every and n % small_every == 0 else rng.randint(40, 90)
            x0, y0 = rng.randint(2, w - side - 3), rng.randint(2, h - side - 3)
            shape = rng.choice(CLASSES)
            draw_shape(draw, shape, (x0, y0, x0 + side, y0 + side), rng.choice(COLOURS))
            true_box = (float(x0), float(y0), float(side + 1), float(side + 1))
            roll = rng.random()
            truth = WRONG_BOX if roll < shares[0] else WRONG_CLASS if roll < shares[0] + shares[1] else RIGHT
            label, box = shape, true_box
            if truth == WRONG_CLASS:
                label = rng.choice([c for c in CLASSES if c != shape])
            if truth == WRONG_BOX:
                dx = side * rng.choice((-0.8, 0.8))
                dy = side * rng.choice((-0.6, 0.6))
                bx, by = min(max(0.0, x0 + dx), w - side - 1.0), min(max(0.0, y0 + dy), h - side - 1.0)
                if abs(bx - x0) < side * 0.5 and abs(by - y0) < side * 0.5:  # clamped back onto the shape: grow it instead
                    box = (
                        float(max(0, x0 - side)),
                        float(max(0, y0 - side)),
                        float(min(w - max(0, x0 - side), 3 * side)),
                        float(min(h - max(0, y0 - side), 3 * side)),
                    )
                else:
                    box = (bx, by, float(side + 1), float(side + 1))
            else:
                box = (x0 + rng.choice((-1.0, 0.0, 1.0)), y0 + rng.choice((-1.0, 0.0, 1.0)), float(side + 1), float(side + 1))
                box = (max(0.0, box[0]), max(0.0, box[1]), box[2], box[3])
            score = round(rng.uniform(0.55, 0.99) if truth == RIGHT else rng.uniform(0.3, 0.8), 3)
            preds.append(Pred(name, w, h, label, box, score, truth, shape, true_box))
        img.save(folder / "images" / name, "JPEG", quality=90)
    return preds


def write_coco(folder: Path, preds: list[Pred], name: str = "predictions.json") -> Path:
    """A COCO detection file (ground-truth layout, with each box's ``score``)."""
    images: dict[str, dict[str, Any]] = {}
    for p in preds:
        images.setdefault(p.image, {"id": len(images) + 1, "file_name": p.image, "width": p.width, "height": p.height})
    categories = [{"id": i + 1, "name": c, "supercategory": "shape"} for i, c in enumerate(CLASSES)]
    annotations = [
        {
            "id": k + 1,
            "image_id": images[p.image]["id"],
            "category_id": CLASSES.index(p.label) + 1,
            "bbox": list(p.box),
            "area": p.box[2] * p.box[3],
            "iscrowd": 0,
            "score": p.score,
        }
        for k, p in enumerate(preds)
    ]
    path = folder / name
    path.write_text(json.dumps({"images": list(images.values()), "categories": categories, "annotations": annotations}))
    return path


def write_yolo(folder: Path, preds: list[Pred]) -> Path:
    """``labels/<stem>.txt`` beside ``images/`` (``class cx cy w h conf``) and ``data.yaml``."""
    lines: dict[str, list[str]] = {}
    for p in preds:
        x, y, w, h = p.box
        values = ((x + w / 2) / p.width, (y + h / 2) / p.height, w / p.width, h / p.height)
        lines.setdefault(Path(p.image).stem, []).append(f"{CLASSES.index(p.label)} " + " ".join(f"{v:.6f}" for v in values) + f" {p.score}")
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for stem, rows in lines.items():
        (folder / "labels" / f"{stem}.txt").write_text("\n".join(rows) + "\n")
    (folder / "data.yaml").write_text("path: .\ntrain: images\nnames:\n" + "".join(f"  {i}: {c}\n" for i, c in enumerate(CLASSES)))
    return folder


def write_label_studio(folder: Path, preds: list[Pred], name: str = "tasks.json") -> Path:
    """Label Studio tasks with the boxes as ``predictions`` of ``rectanglelabels`` (percent units)."""
    tasks: dict[str, dict[str, Any]] = {}
    for k, p in enumerate(preds):
        task = tasks.setdefault(
            p.image,
            {
                "id": len(tasks) + 1,
                "data": {"image": f"/data/local-files/?d=images/{p.image}"},
                "predictions": [{"model_version": "gen", "result": []}],
            },
        )
        x, y, w, h = p.box
        task["predictions"][0]["result"].append(
            {
                "id": f"r{k}",
                "type": "rectanglelabels",
                "from_name": "label",
                "to_name": "image",
                "original_width": p.width,
                "original_height": p.height,
                "image_rotation": 0,
                "score": p.score,
                "value": {
                    "x": x * 100 / p.width,
                    "y": y * 100 / p.height,
                    "width": w * 100 / p.width,
                    "height": h * 100 / p.height,
                    "rotation": 0,
                    "rectanglelabels": [p.label],
                },
            }
        )
    path = folder / name
    path.write_text(json.dumps(list(tasks.values())))
    return path


def pred_key(image: str, box: Any) -> tuple[str, tuple[float, ...]]:
    """How a loaded task finds the generated prediction it shows: the image's file name and the box."""
    return (Path(image).name, tuple(round(float(v), 2) for v in box))


def tasks_truth(session: Any, project_id: int, preds: list[Pred]) -> dict[int, tuple[str, str, Pred]]:
    """Task id -> (external id, task kind, the generated prediction it shows), for the tasks a
    load of ``preds`` made in the project (tests, the validation benchmark, the demo)."""
    from sqlalchemy import select
    from sqlmodel import col

    from bot.tasks.boxes import Prediction
    from bot.tasks.models import Image as ImageRow
    from bot.tasks.models import Task

    by_key = {pred_key(p.image, p.box): p for p in preds}
    out: dict[int, tuple[str, str, Pred]] = {}
    for task_id, external_id, kind, prediction, path in session.execute(
        select(col(Task.id), col(Task.external_id), col(Task.kind), col(Task.prediction_json), col(ImageRow.path))
        .join(ImageRow, col(ImageRow.id) == col(Task.image_id))
        .where(col(Task.project_id) == project_id)
    ):
        box = Prediction.from_json(prediction or "{}").box
        if box is None:
            raise ValueError(f"task {task_id} has no box")
        out[task_id] = (external_id or "", kind, by_key[pred_key(path, box)])
    return out
