"""Confirm-box tasks: one model-predicted box (and class) that workers confirm or reject.

A task's box lives in ``Task.prediction_json`` as a :class:`Prediction`: the box in pixels of the
original image (COCO's ``[x, y, width, height]``), the model's score, whether workers see that
score, and ``src``: what the source file said about the box (ids, class index, the Label Studio
task...) so an export can write it back in the format it came from. The predicted class is the
task's ``prelabel``. The image's other predicted boxes are the other tasks of the project on the
same image, drawn dimmed for context.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from bot.tasks.models import BOX_WRONG_BOX, Answer, AnswerStatus, Task

Box = tuple[float, float, float, float]  # x, y, width, height in original pixels


@dataclass(slots=True)
class Prediction:
    """The model output a task validates. Classify and confirm-mask tasks imported from Label
    Studio keep one too (no box; ``src`` holds the record an export writes back)."""

    box: Box | None = None
    score: float | None = None
    show_score: bool = False
    src: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data: dict[str, Any] = {}
        if self.box is not None:
            data["box"] = [round(v, 3) for v in self.box]
        if self.score is not None:
            data["score"] = self.score
        if self.show_score:
            data["show_score"] = True
        if self.src:
            data["src"] = self.src
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Prediction:
        data = json.loads(text)
        box = None
        if data.get("box") is not None:
            x, y, w, h = (float(v) for v in data["box"])
            box = (x, y, w, h)
        score = data.get("score")
        return cls(box, None if score is None else float(score), bool(data.get("show_score")), dict(data.get("src") or {}))


def check_box(box: Any, width: int, height: int) -> Box:
    """The box as four finite floats inside the image (a pixel of slack for rounding); ValueError says why not."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise ValueError("a box needs 4 numbers [x, y, width, height]")
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box {list(box)!r} is not 4 numbers") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError("box has a value that is not a finite number")
    if w <= 0 or h <= 0:
        raise ValueError(f"box {w:g}x{h:g} has no area")
    slack = 1.0
    if x < -slack or y < -slack or x + w > width + slack or y + h > height + slack:
        raise ValueError(f"box [{x:g}, {y:g}, {w:g}, {h:g}] is outside the {width}x{height} image")
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    return (x0, y0, x1 - x0, y1 - y0)


@dataclass(slots=True)
class BoxView:
    """What a worker's picture and caption of one confirm-box task show."""

    task_id: int
    label: str | None
    prediction: Prediction
    others: list[Box]


def box_view(session: Session, task_id: int) -> BoxView | None:
    """The task's box and the other predicted boxes of the same image in the same project."""
    row = session.execute(
        select(col(Task.project_id), col(Task.image_id), col(Task.prelabel), col(Task.prediction_json)).where(col(Task.id) == task_id)
    ).first()
    if row is None or not row[3]:
        return None
    project_id, image_id, label, prediction_json = row
    others: list[Box] = []
    for (other,) in session.execute(
        select(col(Task.prediction_json))
        .where(col(Task.project_id) == project_id, col(Task.image_id) == image_id, col(Task.id) != task_id)
        .order_by(col(Task.id))
        .limit(200)
    ):
        if other:
            try:
                box = Prediction.from_json(other).box
            except (ValueError, KeyError, TypeError):
                continue
            if box is not None:
                others.append(box)
    prediction = Prediction.from_json(prediction_json)
    if prediction.box is None:
        return None
    return BoxView(task_id, label, prediction, others)


def predicted_box(session: Session, task_id: int) -> Box | None:
    """The task's own predicted box, without the image's other boxes (what checking a drawn
    box against the prediction needs)."""
    text = session.execute(select(col(Task.prediction_json)).where(col(Task.id) == task_id)).scalar()
    return Prediction.from_json(text).box if text else None


def pixel_box(spec: tuple[str, Any], width: int, height: int) -> Box:
    """A source's box in pixels of the image: ``("px", [x, y, w, h])`` (COCO), ``("norm", [cx, cy,
    w, h])`` in 0..1 (YOLO), ``("pct", [x, y, w, h])`` in 0..100 (Label Studio); checked."""
    unit, values = spec
    if not isinstance(values, (list, tuple)) or len(values) != 4:
        raise ValueError("a box needs 4 numbers")
    try:
        a, b, c, d = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"box {list(values)!r} is not 4 numbers") from None
    if unit == "norm":
        if not all(-0.001 <= v <= 1.001 for v in (a, b, c, d)):
            raise ValueError(f"YOLO box {a:g} {b:g} {c:g} {d:g} is not normalised to 0..1")
        return check_box(((a - c / 2) * width, (b - d / 2) * height, c * width, d * height), width, height)
    if unit == "pct":
        return check_box((a * width / 100, b * height / 100, c * width / 100, d * height / 100), width, height)
    return check_box((a, b, c, d), width, height)


# --------------------------------------------------------------------------- fixed boxes
# A worker who drags the box's corners in the Mini App answers "wrong_box" with the box they
# drew (``Answer.box_json``). The verified set then carries the crowd's box instead of the
# model's: the coordinate-wise median of the fixes (robust to one careless drag).

SAME_BOX_IOU = 0.95  # a "fix" this close to the prediction is the prediction: the answer is "correct"


def fixed_box_json(box: Box) -> str:
    """``[x, y, width, height]`` in image pixels, rounded to a tenth of a pixel."""
    return json.dumps([round(v, 1) for v in box], separators=(",", ":"))


def parse_fixed_box(text: str | None) -> Box | None:
    """The box of ``Answer.box_json``; None for a missing or unreadable one (never raises:
    an export must not fail on one hand-edited row)."""
    if not text:
        return None
    try:
        x, y, w, h = (float(v) for v in json.loads(text))
    except (ValueError, TypeError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return None
    return (x, y, w, h)


def box_iou(a: Box, b: Box) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def median_box(boxes: list[Box]) -> Box:
    """The coordinate-wise median of the boxes' corners (x0, y0, x1, y1), as [x, y, w, h]."""
    if not boxes:
        raise ValueError("no boxes")

    def median(values: list[float]) -> float:
        s = sorted(values)
        n = len(s)
        return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2

    x0 = median([b[0] for b in boxes])
    y0 = median([b[1] for b in boxes])
    x1 = median([b[0] + b[2] for b in boxes])
    y1 = median([b[1] + b[3] for b in boxes])
    return (x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0))


def fixed_boxes(session: Session, task_ids: list[int]) -> dict[int, list[Box]]:
    """The accepted "wrong_box" answers' drawn boxes, by task."""
    out: dict[int, list[Box]] = {}
    if not task_ids:
        return out
    for task_id, text in session.execute(
        select(col(Answer.task_id), col(Answer.box_json)).where(
            col(Answer.task_id).in_(task_ids),
            col(Answer.value) == BOX_WRONG_BOX,
            col(Answer.status) == AnswerStatus.ACCEPTED.value,
            col(Answer.box_json).is_not(None),
        )
    ):
        box = parse_fixed_box(text)
        if box is not None:
            out.setdefault(task_id, []).append(box)
    return out
