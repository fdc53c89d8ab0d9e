"""COCO detection, YOLO and Label Studio in and out: load → answer → export → read back with the
formats' own reference code, and the boxes and labels are exactly those the workers accepted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.sample_boxes import CLASSES, RIGHT, WRONG_BOX
from bot.tasks import datasets
from bot.tasks import export as exporting
from bot.tasks.boxes import Prediction
from bot.tasks.datasets import DatasetError, LoadRejected, Selection
from bot.tasks.formats import label_studio
from bot.tasks.models import Task, TaskKind
from tests.admin.helpers import classify_project, jpeg, mask_project
from tests.boxes.helpers import answer_truthfully, box_project, dataset, same_box, task_truth

FIXTURES = Path(__file__).parent / "fixtures"


def _export(db: Database, project_id: int, fmt: str, out: Path, *, include_rejected: bool = False) -> int:
    return exporting.export(db, project_id, what="results", fmt=fmt, out=out, secret="s", include_rejected=include_rejected).rows


def _accepted(truth: dict) -> set[tuple[str, str, tuple[float, ...]]]:
    return {(p.image, p.label, tuple(round(v, 2) for v in p.box)) for p in truth.values() if p.truth == RIGHT}


def _key(image: str, label: str, box: list[float]) -> tuple[str, str, tuple[float, ...]]:
    return (Path(image).name, label, tuple(round(float(v), 2) for v in box))


@pytest.mark.parametrize("fmt", ["coco", "yolo", "label-studio"])
def test_every_format_loads_one_task_per_box(db: Database, tmp_path: Path, fmt: str) -> None:
    source, preds = dataset(tmp_path / "ds", fmt, images=4)
    project = box_project(db)
    summary = datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    assert summary.created == len(preds) == 12 and not summary.bad
    truth = task_truth(db, preds)  # every task matches exactly one generated box
    assert sorted(p.box for p in truth.values()) == sorted(p.box for p in preds)
    with db.session() as s:
        tasks = list(s.execute(select(Task)).scalars())
    for task in tasks:
        pred = Prediction.from_json(task.prediction_json or "")
        assert task.prelabel == truth[task.id].label and pred.score == truth[task.id].score and pred.src["fmt"] == fmt
    again = datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    assert again.created == 0 and again.already_loaded == 12


def test_coco_round_trip_read_back_with_pycocotools(db: Database, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    source, preds = dataset(tmp_path / "ds", "coco", images=5)
    project = box_project(db)
    datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    truth = task_truth(db, preds)
    answer_truthfully(db, truth)
    out = tmp_path / "verified.json"
    n = _export(db, project.id, "coco", out)
    coco = COCO(str(out))
    got = {_key(coco.imgs[a["image_id"]]["file_name"], coco.cats[a["category_id"]]["name"], a["bbox"]) for a in coco.dataset["annotations"]}
    assert got == _accepted(truth) and n == len(got) > 0
    original = json.loads(source.read_text())
    assert {c["id"]: c["name"] for c in original["categories"]} == {cid: c["name"] for cid, c in coco.cats.items()}
    assert {a["id"] for a in coco.dataset["annotations"]} <= {a["id"] for a in original["annotations"]}  # the source's ids
    assert all(a["crowd"]["verdict"] == "accepted" and a["crowd"]["confidence"] > 0.5 for a in coco.dataset["annotations"])
    # --include-rejected: every box, the rejected ones flagged with the crowd's verdict
    n_all = _export(db, project.id, "coco", out, include_rejected=True)
    flagged = json.loads(out.read_text())["annotations"]
    assert n_all == len(preds) == len(flagged)
    rejected = {a["id"] for a in flagged if a["crowd"]["verdict"] == "rejected"}
    assert len(rejected) == sum(p.truth != RIGHT for p in preds)
    assert COCO(str(out)).getAnnIds() == [a["id"] for a in flagged]


def test_yolo_round_trip_read_back_with_globox(db: Database, tmp_path: Path) -> None:
    from globox import AnnotationSet

    source, preds = dataset(tmp_path / "ds", "yolo", images=5)
    project = box_project(db)
    datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    truth = task_truth(db, preds)
    answer_truthfully(db, truth)
    out = tmp_path / "yolo-out"
    n = _export(db, project.id, "yolo", out)
    assert (out / "classes.txt").read_text().split() == list(CLASSES)  # the source's class indexes
    names = dict(enumerate(CLASSES))
    read = AnnotationSet.from_yolo_v5(out / "labels", image_folder=source / "images", image_extension=".jpg")
    got = set()
    for ann in read:
        for b in ann.boxes:
            x, y, w, h = b.ltwh
            got.add(_key(str(ann.image_id), names[int(b.label)], [x, y, w, h]))
            assert b.confidence is not None and b.confidence > 0.5  # the crowd's confidence
    assert {(i, lab, tuple(round(v) for v in box)) for i, lab, box in got} == {
        (i, lab, tuple(round(v) for v in box)) for i, lab, box in _accepted(truth)
    }
    assert n == len(_accepted(truth))
    assert not (out / "rejected").exists()
    _export(db, project.id, "yolo", out, include_rejected=True)
    rejected_lines = sum(len(f.read_text().splitlines()) for f in (out / "rejected" / "labels").glob("*.txt"))
    assert rejected_lines == sum(p.truth != RIGHT for p in preds)


def test_yolo_export_is_the_exact_inverse_of_the_reader(db: Database, tmp_path: Path) -> None:
    """Reloading the exported labels (with the images beside them) gives back the same boxes."""
    source, preds = dataset(tmp_path / "ds", "yolo", images=3)
    project = box_project(db)
    datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    truth = task_truth(db, preds)
    answer_truthfully(db, truth)
    out = tmp_path / "back"
    _export(db, project.id, "yolo", out)
    (out / "images").symlink_to(source / "images")  # outside the export's folder: allowed by name
    again = box_project(db, name="again")
    datasets.load(db, again.id, out, media_dir=None, copy=False, allow_outside=[source])  # type: ignore[arg-type]
    with db.session() as s:
        rows = s.execute(select(Task.prelabel, Task.prediction_json).where(Task.project_id == again.id)).all()
    boxes = sorted((label, Prediction.from_json(p).box) for label, p in rows)
    expected = sorted((p.label, p.box) for p in truth.values() if p.truth == RIGHT)
    assert len(boxes) == len(expected) and all(a[0] == b[0] and same_box(a[1], b[1], 0.01) for a, b in zip(boxes, expected))


def test_label_studio_round_trip_keeps_predictions_and_adds_verdicts(db: Database, tmp_path: Path) -> None:
    source, preds = dataset(tmp_path / "ds", "label-studio", images=4)
    project = box_project(db)
    datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    truth = task_truth(db, preds)
    answer_truthfully(db, truth)
    out = tmp_path / "ls.json"
    n = _export(db, project.id, "label-studio", out)
    original = {t["id"]: t for t in json.loads(source.read_text())}
    exported = json.loads(out.read_text())
    assert {t["id"] for t in exported} == set(original)
    got = set()
    for task in exported:
        assert task["data"] == original[task["id"]]["data"]
        assert sorted(r["id"] for r in task["predictions"][0]["result"]) == sorted(
            r["id"] for r in original[task["id"]]["predictions"][0]["result"]
        )
        for region in task["annotations"][0]["result"]:
            v = region["value"]
            box = [v["x"] * 320 / 100, v["y"] * 240 / 100, v["width"] * 320 / 100, v["height"] * 240 / 100]
            got.add(_key(task["data"]["image"].split("=")[-1], v["rectanglelabels"][0], box))
            assert region["meta"]["text"][0].startswith("crowd: accepted")
    assert got == _accepted(truth) and n == len(got)
    # ... and it loads again as a Label Studio file (its annotations are the accepted boxes)
    for task in exported:
        task.pop("predictions")
    reload = tmp_path / "ds" / "reload.json"
    reload.write_text(json.dumps(exported))
    again = box_project(db, name="again")
    summary = datasets.load(db, again.id, reload, media_dir=None, copy=False)  # type: ignore[arg-type]
    assert summary.created == len(got)


def test_label_studio_rectangles_read_as_label_studios_converter_reads_them(db: Database, tmp_path: Path) -> None:
    """ls_rectangles.json was converted to COCO by label-studio-sdk 2.1.2's own Converter
    (ls_rectangles.converter-coco.json): our reader gives the same pixel boxes."""
    folder = tmp_path / "ls"
    jpeg(folder / "images" / "a.jpg", size=(320, 240))
    (folder / "tasks.json").write_text((FIXTURES / "ls_rectangles.json").read_text())
    project = box_project(db)
    datasets.load(db, project.id, folder / "tasks.json", media_dir=None, copy=False)  # type: ignore[arg-type]
    converted = json.loads((FIXTURES / "ls_rectangles.converter-coco.json").read_text())
    names = {c["id"]: c["name"] for c in converted["categories"]}
    expected = sorted((names[a["category_id"]], a["bbox"]) for a in converted["annotations"])
    with db.session() as s:
        rows = s.execute(select(Task.prelabel, Task.prediction_json)).all()
    got = sorted((label, Prediction.from_json(p).box) for label, p in rows)
    assert [g[0] for g in got] == [e[0] for e in expected]
    assert all(same_box(g[1], e[1], 0.001) for g, e in zip(got, expected))


def test_label_studio_brush_rle_decodes_as_label_studio_encodes() -> None:
    """ls_brush_rle.json: an RLE written by label-studio-sdk's converter.brush.encode_rle."""
    data = json.loads((FIXTURES / "ls_brush_rle.json").read_text())
    mask = label_studio.decode_brush_rle(data["rle"], data["height"], data["width"])
    expected = np.array([[c == "1" for c in row] for row in data["mask_rows"]])
    assert mask.shape == expected.shape and (mask == expected).all()
    with pytest.raises(ValueError, match="image needs"):
        label_studio.decode_brush_rle(data["rle"], data["height"] + 1, data["width"])


def test_label_studio_choices_polygons_and_brushes_make_classify_and_confirm_mask(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "ls"
    jpeg(folder / "a.jpg", size=(40, 30))
    brush = json.loads((FIXTURES / "ls_brush_rle.json").read_text())
    tasks = [
        {
            "id": 1,
            "data": {"image": "/data/upload/1/a.jpg"},
            "predictions": [
                {
                    "score": 0.4,
                    "result": [
                        {"id": "c", "type": "choices", "from_name": "c", "to_name": "image", "value": {"choices": ["dog"]}},
                        {
                            "id": "p",
                            "type": "polygonlabels",
                            "from_name": "p",
                            "to_name": "image",
                            "original_width": 40,
                            "original_height": 30,
                            "value": {"points": [[10, 10], [60, 10], [60, 60], [10, 60]], "polygonlabels": ["box"]},
                        },
                        {
                            "id": "b",
                            "type": "brushlabels",
                            "from_name": "b",
                            "to_name": "image",
                            "original_width": 40,
                            "original_height": 30,
                            "value": {"format": "rle", "rle": brush["rle"], "brushlabels": ["blob"]},
                        },
                    ],
                }
            ],
        }
    ]
    path = folder / "tasks.json"
    path.write_text(json.dumps(tasks))
    cls = classify_project(db, labels=("cat", "dog"))
    assert datasets.load(db, cls.id, path, media_dir=None, copy=False).created == 1  # type: ignore[arg-type]
    masks = mask_project(db)
    assert datasets.load(db, masks.id, path, media_dir=None, copy=False).created == 2  # type: ignore[arg-type]
    with db.session() as s:
        by_project = {
            p: dict(s.execute(select(Task.external_id, Task.prelabel).where(Task.project_id == p)).all()) for p in (cls.id, masks.id)
        }
        brush_mask = s.execute(select(Task.mask_rle).where(Task.external_id == "ls1#b")).scalar_one()
    assert by_project[cls.id] == {"ls1": "dog"}
    assert by_project[masks.id] == {"ls1#p": "box", "ls1#b": "blob"}
    from bot.autoseg import rle

    decoded = rle.decode(json.loads(brush_mask or ""))
    assert (decoded == np.array([[c == "1" for c in row] for row in brush["mask_rows"]])).all()
    # confirm-mask verdicts go back to Label Studio: the polygon accepted, the brush rejected
    from tests.admin.helpers import answer_all

    with db.session() as s:
        ext = dict(s.execute(select(Task.id, Task.external_id).where(Task.project_id == masks.id)).all())
    answer_all(db, 1, lambda card, _wid: "yes" if ext.get(card.task_id) == "ls1#p" else "no" if card.task_id in ext else "dog")
    out = tmp_path / "masks-ls.json"
    assert _export(db, masks.id, "label-studio", out) == 1
    (task,) = json.loads(out.read_text())
    assert task["id"] == 1 and sorted(r["id"] for r in task["predictions"][0]["result"]) == ["b", "p"]
    (region,) = task["annotations"][0]["result"]
    assert region["id"] == "p" and region["value"]["points"][0] == [10, 10] and "accepted" in region["meta"]["text"][0]
    # a rectangle-only file says why it cannot fill a classify project
    boxes_only, _ = dataset(tmp_path / "b", "label-studio", images=1)
    with pytest.raises(DatasetError, match="no choices results for a classify project"):
        datasets.load(db, cls.id, boxes_only, media_dir=None, copy=False)  # type: ignore[arg-type]


def test_bad_rows_are_named_and_nothing_is_loaded(db: Database, tmp_path: Path) -> None:
    source, preds = dataset(tmp_path / "ds", "coco", images=3)
    data = json.loads(source.read_text())
    data["annotations"][0]["bbox"] = [300, 10, 50, 50]  # leaves the 320-wide image
    data["annotations"][1]["category_id"] = 99
    data["annotations"][2].pop("bbox")
    data["annotations"][3]["bbox"] = [1, 1, 0, 5]
    data["annotations"][4]["golden"] = "maybe"
    source.write_text(json.dumps(data))
    project = box_project(db)
    with pytest.raises(LoadRejected) as caught:
        datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    problems = {p.row: p.problem for p in caught.value.problems}
    assert set(problems) == {1, 2, 3, 4, 5}
    assert "outside the 320x240 image" in problems[1] and "category_id 99" in problems[2] and "no bbox" in problems[3]
    assert "no area" in problems[4] and "must be correct, wrong_box, wrong_class" in problems[5]
    with db.session() as s:
        assert s.execute(select(func.count(Task.id))).scalar_one() == 0
    summary = datasets.load(db, project.id, source, media_dir=None, copy=False, skip_bad=True)  # type: ignore[arg-type]
    assert summary.created == len(preds) - 5 and len(summary.bad) == 5


def test_bad_yolo_lines_and_files(db: Database, tmp_path: Path) -> None:
    source, _preds = dataset(tmp_path / "ds", "yolo", images=2)
    first = source / "labels" / "img00000.txt"
    lines = first.read_text().splitlines()
    lines[0] = "7 0.5 0.5 0.1 0.1"
    lines[1] = "0 0.5 0.5 0.1"
    lines[2] = "0 0.5 0.5 1.8 0.1 0.9"
    first.write_text("\n".join(lines) + "\n")
    (source / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    project = box_project(db)
    with pytest.raises(LoadRejected) as caught:
        datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    text = [str(p) for p in caught.value.problems]
    assert any("labels/img00000.txt, row 1: class 7 is not one of the 3 classes" in t for t in text)
    assert any("row 2: expected 'class cx cy w h [conf]'" in t for t in text)
    assert any("row 3" in t and "not normalised to 0..1" in t for t in text)
    assert any("labels/ghost.txt: no image" in t for t in text)
    (source / "data.yaml").unlink()
    with pytest.raises(DatasetError, match="no class names"):
        datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]


def test_project_type_must_fit_the_format(db: Database, tmp_path: Path) -> None:
    yolo, _ = dataset(tmp_path / "y", "yolo", images=1)
    with pytest.raises(DatasetError, match="YOLO boxes make confirm-box tasks"):
        datasets.load(db, classify_project(db).id, yolo, media_dir=None, copy=False)  # type: ignore[arg-type]
    coco, _ = dataset(tmp_path / "c", "coco", images=1)
    with pytest.raises(LoadRejected, match="has no segmentation"):
        datasets.load(db, mask_project(db).id, coco, media_dir=None, copy=False)  # type: ignore[arg-type]


def test_score_window_and_sample_pick_the_predictions_people_see(db: Database, tmp_path: Path) -> None:
    source, preds = dataset(tmp_path / "ds", "coco", images=10)
    uncertain = [p for p in preds if 0.5 <= p.score <= 0.8]
    project = box_project(db)
    summary = datasets.load(db, project.id, source, media_dir=None, copy=False, selection=Selection(min_score=0.5, max_score=0.8))  # type: ignore[arg-type]
    assert summary.created == len(uncertain) and summary.left_out == len(preds) - len(uncertain)
    with db.session() as s:
        scores = [Prediction.from_json(p).score for p in s.execute(select(Task.prediction_json)).scalars()]
    assert all(0.5 <= (v or 0) <= 0.8 for v in scores)
    audit = box_project(db, name="audit")
    picked = datasets.load(db, audit.id, source, media_dir=None, copy=False, selection=Selection(sample=7, seed=3))  # type: ignore[arg-type]
    assert picked.created == 7 and picked.left_out == len(preds) - 7
    with db.session() as s:
        first = set(s.execute(select(Task.external_id).where(Task.project_id == audit.id)).scalars())
    same = box_project(db, name="audit2")
    datasets.load(db, same.id, source, media_dir=None, copy=False, selection=Selection(sample=7, seed=3))  # type: ignore[arg-type]
    with db.session() as s:
        assert set(s.execute(select(Task.external_id).where(Task.project_id == same.id)).scalars()) == first
    for bad in ({"min_score": 0.9, "max_score": 0.1}, {"min_score": 2.0}, {"sample": 0}):
        with pytest.raises(ValueError):
            Selection(**bad)  # type: ignore[arg-type]


def test_golden_boxes_and_their_answers(db: Database, tmp_path: Path) -> None:
    source, _preds = dataset(tmp_path / "ds", "coco", images=2)
    data = json.loads(source.read_text())
    data["annotations"][0]["golden"] = "wrong box"
    data["annotations"][1]["golden"] = "yes"
    source.write_text(json.dumps(data))
    project = box_project(db)
    datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    with db.session() as s:
        golden = dict(s.execute(select(Task.external_id, Task.golden).where(Task.kind == TaskKind.GOLDEN.value)).all())
    assert golden == {"img00000.jpg#1": WRONG_BOX, "img00000.jpg#2": RIGHT}


def test_label_studio_classify_round_trip_puts_the_crowds_label_beside_the_suggestion(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "ls"
    tasks = []
    for i in range(3):
        jpeg(folder / f"p{i}.jpg", size=(40, 30), seed=i)
        result = {"id": f"c{i}", "type": "choices", "from_name": "c", "to_name": "image", "value": {"choices": ["dog"]}}
        tasks.append({"id": 10 + i, "data": {"image": f"/data/upload/1/p{i}.jpg"}, "predictions": [{"score": 0.5, "result": [result]}]})
    path = folder / "tasks.json"
    path.write_text(json.dumps(tasks))
    project = classify_project(db, labels=("cat", "dog"), overlap=1)
    datasets.load(db, project.id, path, media_dir=None, copy=False)  # type: ignore[arg-type]
    with db.session() as s:
        ids = dict(s.execute(select(Task.id, Task.external_id)).all())
    from tests.admin.helpers import answer_all

    answer_all(db, 1, lambda card, _wid: "cat" if ids[card.task_id] == "ls10" else "dog")
    out = tmp_path / "out.json"
    assert _export(db, project.id, "label-studio", out) == 3
    exported = {t["id"]: t for t in json.loads(out.read_text())}
    assert set(exported) == {10, 11, 12}
    for tid, task in exported.items():
        assert task["predictions"][0]["result"][0]["value"]["choices"] == ["dog"]  # the suggestion, as it came
        crowd = task["annotations"][0]["result"][0]
        assert crowd["value"]["choices"] == (["cat"] if tid == 10 else ["dog"])
        assert task["data"]["image"] == f"/data/upload/1/p{tid - 10}.jpg"


def test_dynamic_overlap_stops_when_the_verdicts_agree_and_asks_more_when_they_do_not(db: Database, tmp_path: Path) -> None:
    source, preds = dataset(tmp_path / "ds", "coco", images=2)
    # no golden history: every vote has the prior weight, and two agreeing ones give 2/3 over three verdicts
    project = box_project(db, overlap=4, min_overlap=2, confidence_target=0.6)
    datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    truth = task_truth(db, preds)
    disputed = min(truth)
    from tests.admin.helpers import answer_all

    def choose(card, wid: int) -> str:  # type: ignore[no-untyped-def]
        # on one box the workers split; everywhere else they agree on the truth
        if card.task_id == disputed:
            return ("correct", "wrong_box", "wrong_class", "correct")[wid % 4]
        return truth[card.task_id].truth

    answer_all(db, 4, choose)
    with db.session() as s:
        counts = dict(s.execute(select(Task.id, Task.answers_count)).all())
        status = dict(s.execute(select(Task.id, Task.status)).all())
    assert all(counts[t] == 2 for t in truth if t != disputed), (counts, disputed)  # two agreeing answers were enough
    assert counts[disputed] == 4 and set(status.values()) == {"done"}
    out = tmp_path / "r.jsonl"
    exporting.export(db, project.id, what="results", fmt="jsonl", out=out, secret="s", include_rejected=True)
    rows = {r["external_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    with db.session() as s:
        external = dict(s.execute(select(Task.id, Task.external_id)).all())
    assert len(rows) == len(truth)
    for tid, pred in truth.items():
        row = rows[external[tid]]
        assert row["crowd_answers"] == counts[tid]
        if tid != disputed:
            assert row["crowd_label"] == pred.truth and row["verdict"] == ("accepted" if pred.truth == RIGHT else "rejected")


def test_our_label_studio_export_reads_in_label_studios_converter_as_the_accepted_boxes(db: Database, tmp_path: Path) -> None:
    """crowdpin_ls_export.converter-coco.json is label-studio-sdk 2.1.2's ``Converter.convert_to_coco``
    of this very scenario's export (2 images, 6 boxes, truthful workers): Label Studio reads our
    file as exactly the boxes the workers accepted."""
    source, preds = dataset(tmp_path / "ds", "label-studio", images=2)
    project = box_project(db)
    datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    truth = task_truth(db, preds)
    answer_truthfully(db, truth)
    out = tmp_path / "export.json"
    _export(db, project.id, "label-studio", out)
    converted = json.loads((FIXTURES / "crowdpin_ls_export.converter-coco.json").read_text())
    names = {c["id"]: c["name"] for c in converted["categories"]}
    files = {i["id"]: i["file_name"] for i in converted["images"]}
    theirs = {_key(files[a["image_id"]].split("=")[-1], names[a["category_id"]], a["bbox"]) for a in converted["annotations"]}
    assert theirs == _accepted(truth)
    ours = set()
    for task in json.loads(out.read_text()):
        assert isinstance(task["id"], int) and task["annotations"][0]["result"] is not None
        for region in task["annotations"][0]["result"]:
            v = region["value"]
            box = [v["x"] * 3.2, v["y"] * 2.4, v["width"] * 3.2, v["height"] * 2.4]
            ours.add(_key(task["data"]["image"].split("=")[-1], v["rectanglelabels"][0], box))
    assert ours == theirs


@pytest.mark.parametrize("fmt", ["coco", "yolo", "label-studio"])
def test_images_outside_the_dataset_folder_are_bad_rows(db: Database, tmp_path: Path, fmt: str) -> None:
    """Path confinement (bot.tasks.safety) holds for every format: ``..``, absolute paths and
    symlinks out of the folder are named bad rows, never read, unless --allow-outside names the folder."""
    source, preds = dataset(tmp_path / "ds", fmt, images=2)
    secret = jpeg(tmp_path / "elsewhere" / "secret.jpg", size=(320, 240))
    if fmt == "coco":
        data = json.loads(source.read_text())
        data["images"][0]["file_name"] = "../elsewhere/secret.jpg"
        data["images"][1]["file_name"] = str(secret)
        source.write_text(json.dumps(data))
    elif fmt == "label-studio":
        data = json.loads(source.read_text())
        data[0]["data"]["image"] = "/data/local-files/?d=../elsewhere/secret.jpg"
        data[1]["data"]["image"] = f"/data/local-files/?d={secret}"
        source.write_text(json.dumps(data))
    else:
        for name in ("img00000.jpg", "img00001.jpg"):
            (source / "images" / name).unlink()
            (source / "images" / name).symlink_to(secret)
    project = box_project(db)
    with pytest.raises(LoadRejected) as caught:
        datasets.load(db, project.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
    assert all("outside the dataset folder" in p.problem for p in caught.value.problems)
    assert len(caught.value.problems) == (2 if fmt == "yolo" else len(preds))  # YOLO: one per label file
    with db.session() as s:
        assert s.execute(select(func.count(Task.id))).scalar_one() == 0
    if fmt == "yolo":  # the operator vouches for the folder
        summary = datasets.load(db, project.id, source, media_dir=None, copy=False, allow_outside=[tmp_path / "elsewhere"])  # type: ignore[arg-type]
        assert summary.created == len(preds)
