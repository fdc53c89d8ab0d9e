"""Boxes the workers drew (the Mini App's ✏️ Precise on a confirm-box task): stored with the
answer, aggregated as the median of the drawn boxes, and written back by every export in place
of the model's box, with the model's box beside it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import clock, workers
from bot.db import Database
from bot.sample_boxes import WRONG_BOX, Pred
from bot.tasks import datasets, service
from bot.tasks import export as exporting
from bot.tasks.boxes import box_iou, fixed_box_json, median_box, parse_fixed_box
from bot.tasks.models import Answer
from bot.wallet.models import LedgerEntry
from bot.work import answers
from tests.boxes.helpers import box_project, dataset, task_truth


def test_median_box_is_robust_to_one_careless_drag() -> None:
    good = [(10.0, 20.0, 30.0, 40.0), (12.0, 19.0, 29.0, 42.0)]
    careless = (150.0, 150.0, 5.0, 5.0)
    x, y, w, h = median_box([*good, careless])
    assert (x, y) == (12.0, 20.0) and (x + w, y + h) == (41.0, 61.0)
    assert median_box(good) == (11.0, 19.5, 29.5, 41.0)
    with pytest.raises(ValueError):
        median_box([])
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_fixed_box_json_round_trips_and_bad_text_reads_as_none() -> None:
    assert parse_fixed_box(fixed_box_json((1.234, 5.0, 6.06, 7.0))) == (1.2, 5.0, 6.1, 7.0)
    for bad in (None, "", "[1,2,3]", "nope", "[1,2,0,4]", '[1,2,"x",4]', "[1,2,NaN,4]"):
        assert parse_fixed_box(bad) is None, bad


def _worker(db: Database, n: int) -> int:
    with db.session() as s:
        wid = workers.register(s, tg_id=7700 + n, name=f"w{n}")[0].id
    assert wid is not None
    return wid


def _answer_all(db: Database, wid: int, verdict: dict[int, tuple[str, str | None]]) -> None:
    while True:
        card = db.call(service.next_task, wid)
        if isinstance(card, service.NoTask):
            return
        clock.advance(4)
        value, box = verdict[card.task_id]
        result = db.call(answers.submit_answer, wid, card.assignment_id, value, box_json=box)
        assert isinstance(result, service.Submitted), result


def _two_wrong_boxes(db: Database, tmp_path: Path) -> tuple[int, dict[int, Pred], int, int]:
    source, preds = dataset(tmp_path / "ds", "coco", images=1, per_image=2, size=(320, 240), shares=(1.0, 0.0), small_every=0)
    project = box_project(db, overlap=3, price=10)
    datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    truth = task_truth(db, preds)
    assert all(p.truth == WRONG_BOX for p in truth.values())
    fixed_task, kept_task = sorted(truth)
    assert project.id is not None
    return project.id, truth, fixed_task, kept_task


def test_a_drawn_box_is_only_the_fix_of_a_wrong_box(db: Database, tmp_path: Path) -> None:
    _, truth, _, _ = _two_wrong_boxes(db, tmp_path)
    wid = _worker(db, 0)
    card = db.call(service.next_task, wid)
    assert isinstance(card, service.TaskCard)
    drawn = fixed_box_json(truth[card.task_id].true_box)
    for value in ("correct", "wrong_class"):
        refused = db.call(answers.submit_answer, wid, card.assignment_id, value, box_json=drawn)
        assert refused == service.Refusal.INVALID
    with db.session() as s:
        assert s.execute(select(func.count(Answer.id))).scalar_one() == 0
        assert s.execute(select(func.count(LedgerEntry.id))).scalar_one() == 0
    done = db.call(answers.submit_answer, wid, card.assignment_id, "wrong_box", box_json=drawn)
    assert isinstance(done, service.Submitted) and done.reward == 10
    again = db.call(answers.submit_answer, wid, card.assignment_id, "wrong_box", box_json=drawn)
    assert again == service.Refusal.ALREADY
    with db.session() as s:
        stored = s.execute(select(Answer)).scalars().all()
    assert [(a.value, a.box_json) for a in stored] == [("wrong_box", drawn)]


def test_exports_write_the_crowds_box_for_a_corrected_prediction(db: Database, tmp_path: Path) -> None:
    from globox import AnnotationSet
    from pycocotools.coco import COCO

    project_id, truth, fixed_task, kept_task = _two_wrong_boxes(db, tmp_path)
    tx, ty, tw, th = truth[fixed_task].true_box
    drawn = [(tx + 1, ty, tw, th), (tx, ty - 1, tw + 1, th + 2), (tx + 40, ty + 30, tw / 2, th / 2)]  # one careless drag
    for n, fix in enumerate(drawn):
        # every worker fixes the first box; on the second, two say "correct" and one draws
        second = ("correct", None) if n < 2 else ("wrong_box", fixed_box_json(truth[kept_task].true_box))
        _answer_all(db, _worker(db, n), {fixed_task: ("wrong_box", fixed_box_json(fix)), kept_task: second})
    want = median_box(drawn)
    assert box_iou(want, truth[fixed_task].true_box) > 0.9

    out = tmp_path / "verified.json"
    assert exporting.export(db, project_id, what="results", fmt="coco", out=out, secret="s").rows == 2
    coco = COCO(str(out))
    anns = {a["crowd"]["verdict"]: a for a in coco.dataset["annotations"]}
    assert set(anns) == {"corrected", "accepted"}
    assert anns["corrected"]["bbox"] == pytest.approx(list(want), abs=0.01)
    assert anns["corrected"]["crowd"]["model_bbox"] == pytest.approx(list(truth[fixed_task].box), abs=0.01)
    assert anns["corrected"]["crowd"]["fixes"] == 3
    assert anns["accepted"]["bbox"] == pytest.approx(list(truth[kept_task].box), abs=0.01)  # the crowd kept the model's

    yolo = tmp_path / "yolo"
    exporting.export(db, project_id, what="results", fmt="yolo", out=yolo, secret="s")
    image = Path(truth[fixed_task].image)
    read = AnnotationSet.from_yolo_v5(yolo / "labels", image_folder=tmp_path / "ds" / "images", image_extension=".jpg")
    boxes = sorted((b.ltwh for ann in read for b in ann.boxes), key=lambda b: b[0])
    assert len(boxes) == 2 and any(box_iou(tuple(b), want) > 0.99 for b in boxes), (boxes, want, image)

    rows_out = tmp_path / "boxes.csv"
    exporting.export(db, project_id, what="results", fmt="csv", out=rows_out, secret="s")
    rows = {r["verdict"]: r for r in csv.DictReader(io.StringIO(rows_out.read_text(encoding="utf-8")))}
    assert [float(rows["corrected"][k]) for k in ("x", "y", "width", "height")] == pytest.approx(list(want), abs=0.01)
    assert json.loads(rows["corrected"]["model_box"]) == pytest.approx(list(truth[fixed_task].box), abs=0.01)
    assert (
        rows["corrected"]["crowd_fixes"] == "3" and rows["accepted"]["model_box"] == "" and rows["accepted"]["crowd_fixes"] == "0"
    )  # counted behind a correction only

    ls = tmp_path / "ls.json"
    exporting.export(db, project_id, what="results", fmt="label-studio", out=ls, secret="s")
    (task,) = json.loads(ls.read_text())
    regions = task["annotations"][0]["result"]
    predicted = task["predictions"][0]["result"]
    assert len(regions) == len(predicted) == 2
    value = next(r["value"] for r in regions if "corrected" in r["meta"]["text"][0])
    w, h = truth[fixed_task].width, truth[fixed_task].height
    got = (value["x"] * w / 100, value["y"] * h / 100, value["width"] * w / 100, value["height"] * h / 100)
    assert got == pytest.approx(want, abs=0.01)
    # the prediction beside it is the model's, untouched
    assert any(abs(p["value"]["x"] * w / 100 - truth[fixed_task].box[0]) < 0.01 for p in predicted)
