"""The verified set written back in the format an ML pipeline reads: COCO detection, YOLO,
Label Studio, or a flat CSV/JSONL of boxes with verdicts.

A task's crowd verdict is its aggregated label (``bot.tasks.aggregate``): ``correct`` boxes are
accepted; a ``wrong_box`` for which workers drew the right box in the Mini App is
``corrected`` and written with the crowd's box (the median of the drawn ones,
:func:`bot.tasks.boxes.median_box`), kept like an accepted one; other ``wrong_box`` /
``wrong_class`` ones are rejected and tasks without answers are ``unverified``; both are left
out unless ``include_rejected`` (then flagged). Every box carries
the crowd's confidence and number of answers. Sources' own ids come back (COCO image,
category and annotation ids; YOLO label files and class indexes; Label Studio task ids, data
and original predictions) from what the loader kept in ``Task.prediction_json``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlmodel import Session, col

from bot.tasks.boxes import Box, Prediction, fixed_boxes, median_box
from bot.tasks.formats.common import csv_cell
from bot.tasks.models import BOX_CORRECT, BOX_WRONG_BOX, Image, Project, ProjectType, Task

ACCEPTED, CORRECTED, REJECTED, UNVERIFIED = "accepted", "corrected", "rejected", "unverified"
KEPT = (ACCEPTED, CORRECTED)
BOX_COLUMNS = (
    "external_id",
    "image",
    "label",
    "x",
    "y",
    "width",
    "height",
    "model_score",
    "verdict",
    "crowd_label",
    "crowd_confidence",
    "crowd_answers",
    "model_box",  # corrected: the predicted [x, y, width, height] (x .. height are the crowd's box)
    "crowd_fixes",  # corrected: how many drawn boxes its box is the median of (0 otherwise)
)


@dataclass(slots=True)
class Verified:
    """One task with its crowd verdict and what the export needs of its source."""

    task_id: int
    external_id: str
    label: str | None  # the predicted class (prelabel)
    prediction: Prediction
    image_id: int
    image_path: str
    width: int
    height: int
    crowd_label: str | None
    confidence: float
    answers: int
    fixes: int = 0  # boxes workers drew for a wrong_box verdict ...
    fixed: Box | None = None  # ... and their median: the crowd's box (bot.tasks.boxes.median_box)

    @property
    def box(self) -> Box | None:
        """The box an export writes: the crowd's for a corrected one, else the prediction's."""
        return self.fixed or self.prediction.box

    @property
    def verdict(self) -> str:
        if self.crowd_label is None:
            return UNVERIFIED
        if self.fixed is not None:
            return CORRECTED
        return ACCEPTED if self.crowd_label in (BOX_CORRECT, "yes") or self._classify_accepted() else REJECTED

    def _classify_accepted(self) -> bool:
        return self.prediction.box is None and self.crowd_label not in ("no", "wrong_box", "wrong_class") and self.label is not None

    @property
    def file_name(self) -> str:
        return self.external_id.split("#", 1)[0]

    def crowd(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "label": self.crowd_label,
            "confidence": round(self.confidence, 4),
            "answers": self.answers,
        }
        if self.fixed is not None and self.prediction.box is not None:
            out["fixes"] = self.fixes
            out["model_bbox"] = [round(v, 3) for v in self.prediction.box]
        return out


def verified(session: Session, project: Project, results: Iterable[Any], chunk: int = 1000) -> Iterator[Verified]:
    """Join aggregated results with their tasks' predictions and images, a chunk at a time."""
    batch: list[Any] = []

    def flush() -> Iterator[Verified]:
        ids = [r.task_id for r in batch]
        info = {
            row[0]: row[1:]
            for row in session.execute(
                select(
                    col(Task.id),
                    col(Task.prelabel),
                    col(Task.prediction_json),
                    col(Image.id),
                    col(Image.path),
                    col(Image.width),
                    col(Image.height),
                )
                .join(Image, col(Image.id) == col(Task.image_id))
                .where(col(Task.id).in_(ids))
            )
        }
        drawn = fixed_boxes(session, [r.task_id for r in batch if r.label == BOX_WRONG_BOX])
        for r in batch:
            prelabel, pred, iid, path, w, h = info[r.task_id]
            prediction = Prediction.from_json(pred) if pred else Prediction()
            boxes = drawn.get(r.task_id, [])  # only wrong_box verdicts have any
            yield Verified(
                r.task_id,
                r.external_id,
                prelabel,
                prediction,
                iid,
                path,
                w,
                h,
                r.label,
                float(r.confidence),
                r.n_answers,
                len(boxes),
                median_box(boxes) if boxes else None,
            )

    for r in results:
        batch.append(r)
        if len(batch) >= chunk:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


def _kept(items: Iterable[Verified], include_rejected: bool) -> Iterator[Verified]:
    for v in items:
        if v.verdict in KEPT or include_rejected:
            yield v


def _need_boxes(project: Project, fmt: str) -> None:
    from bot.tasks.export import ExportError

    if project.type != ProjectType.CONFIRM_BOX:
        raise ExportError(f"{fmt} export of verified boxes is for confirm-box projects; project {project.id} is {project.type}")


# --------------------------------------------------------------------------- COCO


def write_coco(project: Project, items: Iterable[Verified], fh: IO[str], *, include_rejected: bool) -> int:
    """A COCO detection file (ground-truth layout: ``pycocotools.coco.COCO`` reads it)."""
    _need_boxes(project, "COCO")
    images: dict[Any, dict[str, Any]] = {}
    categories: dict[str, Any] = {}
    annotations: list[dict[str, Any]] = []
    everything = list(items)  # categories and images of every prediction, kept or not: ids stay stable
    used_ids = {v.prediction.src.get("category_id") for v in everything if v.prediction.src.get("fmt") == "coco"}
    next_cat = max([c for c in used_ids if isinstance(c, int)] or [0]) + 1
    for v in everything:
        src = v.prediction.src
        if src.get("fmt") == "coco":
            image_id, cat_id, ann_id = src.get("image_id"), src.get("category_id"), src.get("ann_id", v.task_id)
        elif src.get("fmt") == "yolo":
            image_id, cat_id, ann_id = v.image_id, int(src.get("class_id", 0)) + 1, v.task_id
        else:
            image_id, cat_id, ann_id = v.image_id, None, v.task_id
        label = v.label or ""
        if cat_id is None:
            cat_id = categories.get(label)
            if cat_id is None:
                cat_id, next_cat = next_cat, next_cat + 1
        categories.setdefault(label, cat_id)
        if image_id not in images:
            name = src.get("file") if src.get("fmt") == "yolo" else v.file_name
            images[image_id] = {"id": image_id, "file_name": name, "width": v.width, "height": v.height}
        if not (v.verdict in KEPT or include_rejected):
            continue
        assert v.box is not None
        x, y, w, h = v.box
        ann: dict[str, Any] = {
            "id": ann_id,
            "image_id": image_id,
            "category_id": cat_id,
            "bbox": [x, y, w, h],
            "area": round(w * h, 3),
            "iscrowd": 0,
            "crowd": v.crowd(),
        }
        if v.prediction.score is not None:
            ann["score"] = v.prediction.score
        annotations.append(ann)
    data = {
        "info": {"description": f"crowdpin project {project.name}: verified boxes", "contributor": "crowdpin"},
        "images": list(images.values()),
        "categories": [{"id": cid, "name": name, "supercategory": ""} for name, cid in sorted(categories.items(), key=lambda kv: kv[1])],
        "annotations": annotations,
    }
    fh.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")))  # dumps: the C encoder (dump is pure Python)
    fh.write("\n")
    return len(annotations)


# --------------------------------------------------------------------------- YOLO


def yolo_line(class_id: int, box: tuple[float, float, float, float], width: int, height: int, conf: float | None = None) -> str:
    x, y, w, h = box
    values = [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height]
    text = f"{class_id} " + " ".join(f"{v:.6f}" for v in values)
    return text if conf is None else f"{text} {conf:.4f}"


def write_yolo(project: Project, items: Iterable[Verified], out: Path, *, include_rejected: bool) -> int:
    """``out/labels/<stem>.txt`` (``class cx cy w h crowd_confidence``), ``out/data.yaml`` and
    ``out/classes.txt`` with the class names, ``out/images.txt`` listing the images; rejected
    and unverified boxes, with ``include_rejected``, under ``out/rejected/labels/``.

    Images are not copied: ``images.txt`` names where they are (Ultralytics reads such a list).
    """
    _need_boxes(project, "YOLO")
    names: dict[int, str] = {}
    by_name: dict[str, int] = {}
    files: dict[tuple[bool, str], list[str]] = {}
    image_paths: dict[str, str] = {}
    n = 0
    everything = list(items)
    for v in everything:  # class indexes of a YOLO source stay what they were
        if v.prediction.src.get("fmt") == "yolo" and v.label is not None:
            cid = int(v.prediction.src["class_id"])
            names.setdefault(cid, v.label)
            by_name.setdefault(v.label, cid)
    for v in everything:  # every class, kept boxes or not: indexes do not depend on the verdicts
        label = v.label or ""
        if label not in by_name:
            cid = max(names, default=-1) + 1
            names[cid], by_name[label] = label, cid
    for v in _kept(everything, include_rejected):
        label = v.label or ""
        src = v.prediction.src
        stem = str(src["stem"]) if src.get("fmt") == "yolo" else Path(v.file_name).with_suffix("").as_posix()
        assert v.box is not None
        line = yolo_line(by_name[label], v.box, v.width, v.height, v.confidence)
        files.setdefault((v.verdict in KEPT, stem), []).append(line)
        image_paths.setdefault(stem, v.image_path)
        n += 1
    out.mkdir(parents=True, exist_ok=True)
    made: set[Path] = set()
    for (accepted, stem), lines in files.items():
        target = out / ("labels" if accepted else "rejected/labels") / f"{stem}.txt"
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        with open(target, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    ordered = [names[i] if i in names else f"class{i}" for i in range(max(names, default=-1) + 1)]
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in ordered), encoding="utf-8")
    yaml_names = "\n".join(f"  {i}: {json.dumps(name, ensure_ascii=False)}" for i, name in enumerate(ordered))
    (out / "data.yaml").write_text(
        f"# crowdpin project {project.name}: verified boxes\nnc: {len(ordered)}\nnames:\n{yaml_names}\n", encoding="utf-8"
    )
    (out / "images.txt").write_text("".join(f"{p}\n" for p in image_paths.values()), encoding="utf-8")
    return n


# --------------------------------------------------------------------------- Label Studio


def _ls_percent(box: Box, width: int, height: int) -> dict[str, float]:
    """A pixel box as Label Studio's ``x, y, width, height`` in percent of the image."""
    x, y, w, h = box
    return {"x": x * 100 / width, "y": y * 100 / height, "width": w * 100 / width, "height": h * 100 / height}


def _ls_region(v: Verified, result_id: str) -> dict[str, Any]:
    """A rectangle result of a box from another source, in Label Studio's percent layout."""
    assert v.prediction.box is not None
    return {
        "id": result_id,
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": v.width,
        "original_height": v.height,
        "image_rotation": 0,
        "value": {
            **_ls_percent(v.prediction.box, v.width, v.height),
            "rotation": 0,
            "rectanglelabels": [v.label or ""],
        },
    }


def _ls_choice(project: Project, v: Verified) -> dict[str, Any]:
    """A classify task from another source as a ``choices`` result (masks from elsewhere are not
    written: Label Studio would need them as brush RLE)."""
    if project.type != ProjectType.CLASSIFY:
        return {}
    return {
        "id": f"t{v.task_id}",
        "type": "choices",
        "from_name": "choice",
        "to_name": "image",
        "value": {"choices": [v.label or v.crowd_label or ""]},
    }


def write_label_studio(project: Project, items: Iterable[Verified], fh: IO[str], *, include_rejected: bool) -> int:
    """Label Studio tasks: the original ``predictions`` and one ``annotations`` entry holding the
    regions the crowd accepted (each with the crowd's verdict in its ``meta``); with
    ``include_rejected`` the rejected regions too, their verdict in ``meta``. Tasks that came
    from Label Studio keep their id and data; others get one task per image."""
    tasks: dict[Any, dict[str, Any]] = {}
    n = 0
    for v in items:
        src = v.prediction.src
        if src.get("fmt") == "label-studio":
            key = src.get("task")
            original = dict(src.get("result") or {})
            data = src.get("data") or {}
            meta = src.get("meta") or {}
        else:
            key = f"image:{v.image_id}"
            original = _ls_region(v, f"t{v.task_id}") if v.prediction.box is not None else _ls_choice(project, v)
            data = {"image": v.image_path}
            meta = {}
        task = tasks.get(key)
        if task is None:
            # Label Studio's converter needs every task's id: the source's, else the image's
            task_id = key if src.get("fmt") == "label-studio" else v.image_id
            task = tasks[key] = {
                "id": task_id,
                "data": data,
                "predictions": [{"model_version": meta.get("model_version", "import"), "result": []}],
            }
            if "score" in meta:
                task["predictions"][0]["score"] = meta["score"]
            task["annotations"] = [{"id": len(tasks), "result": [], "ground_truth": False, "lead_time": 0, "completed_by": "crowdpin"}]
        if original:
            task["predictions"][0]["result"].append(original)
        if not original or not (v.verdict in KEPT or include_rejected):
            continue
        region = json.loads(json.dumps(original))
        if v.fixed is not None and isinstance(region.get("value"), dict):  # the crowd's box
            region["value"].update(_ls_percent(v.fixed, v.width, v.height))
        if project.type == ProjectType.CLASSIFY and v.crowd_label is not None:
            region.setdefault("value", {})["choices"] = [v.crowd_label]
        crowd = v.crowd()
        region["meta"] = {"text": [f"crowd: {crowd['verdict']} ({crowd['label']}, {crowd['confidence']:.2f}, {crowd['answers']} answers)"]}
        task["annotations"][0]["result"].append(region)
        n += 1
    fh.write(json.dumps(list(tasks.values()), ensure_ascii=False, separators=(",", ":")))
    fh.write("\n")
    return n


# --------------------------------------------------------------------------- CSV / JSONL


def box_record(v: Verified) -> dict[str, Any]:
    box = v.box or (None, None, None, None)
    model_box = [round(c, 3) for c in v.prediction.box] if v.fixed is not None and v.prediction.box is not None else None
    return dict(
        zip(
            BOX_COLUMNS,
            (
                v.external_id,
                v.file_name,
                v.label,
                *box,
                v.prediction.score,
                v.verdict,
                v.crowd_label,
                round(v.confidence, 4),
                v.answers,
                json.dumps(model_box) if model_box else None,
                v.fixes if model_box else 0,
            ),
        )
    )


def write_box_rows(project: Project, items: Iterable[Verified], fh: IO[str], *, fmt: str, include_rejected: bool) -> int:
    _need_boxes(project, fmt.upper())
    n = 0
    writer: Callable[[dict[str, Any]], Any]
    if fmt == "csv":
        w = csv.writer(fh)
        w.writerow(BOX_COLUMNS)

        def writer(record: dict[str, Any]) -> Any:
            return w.writerow(["" if record[c] is None else csv_cell(record[c]) for c in BOX_COLUMNS])

    else:

        def writer(record: dict[str, Any]) -> Any:
            return fh.write(json.dumps(record, ensure_ascii=False) + "\n")

    for v in _kept(items, include_rejected):
        writer(box_record(v))
        n += 1
    return n
