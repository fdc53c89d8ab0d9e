"""Builders for the confirm-box tests: generated detections in each format, truthful workers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot import clock, sample_boxes, workers
from bot.db import Database
from bot.sample_boxes import Pred
from bot.tasks import projects, service
from bot.tasks.boxes import Prediction
from bot.tasks.models import Image, Project, Task
from bot.work import answers

WRITERS = {
    "coco": lambda folder, preds: sample_boxes.write_coco(folder, preds),
    "yolo": lambda folder, preds: sample_boxes.write_yolo(folder, preds),
    "label-studio": lambda folder, preds: sample_boxes.write_label_studio(folder, preds),
}


def box_project(db: Database, name: str = "boxes", **fields: Any) -> Project:
    fields.setdefault("overlap", 1)
    with db.session() as s:
        return projects.create(s, name=name, type="confirm-box", **fields)


def dataset(folder: Path, fmt: str, images: int = 4, **kwargs: Any) -> tuple[Path, list[Pred]]:
    preds = sample_boxes.generate(folder, images, **kwargs)
    return WRITERS[fmt](folder, preds), preds


def same_box(a: Sequence[float], b: Sequence[float], tol: float = 0.01) -> bool:
    return all(abs(float(x) - float(y)) <= tol for x, y in zip(a, b))


def truth_of(preds: list[Pred], image_name: str, box: Sequence[float]) -> Pred:
    found = [p for p in preds if p.image == image_name and same_box(p.box, box)]
    assert len(found) == 1, (image_name, box, found)
    return found[0]


def task_truth(db: Database, preds: list[Pred]) -> dict[int, Pred]:
    """task id -> the generated prediction it shows (matched by image file and box)."""
    out = {}
    with db.session() as s:
        rows = s.execute(select(Task.id, Task.prediction_json, Image.path).join(Image, Image.id == Task.image_id)).all()
    for tid, pred, path in rows:
        box = Prediction.from_json(pred).box
        assert box is not None
        out[tid] = truth_of(preds, Path(path).name, box)
    return out


def answer_truthfully(db: Database, truth: dict[int, Pred], n_workers: int = 1, tg_base: int = 9000) -> int:
    """Workers answer every task they get with its true verdict; returns the answers given."""
    n = 0
    for i in range(n_workers):
        with db.session() as s:
            wid = workers.register(s, tg_id=tg_base + i, name=f"w{i}")[0].id
        while True:
            card = db.call(service.next_task, wid)
            if isinstance(card, service.NoTask):
                break
            clock.advance(4)
            result = db.call(answers.submit_answer, wid, card.assignment_id, truth[card.task_id].truth, mask_rle=None)
            assert isinstance(result, service.Submitted), result
            n += 1
    return n
