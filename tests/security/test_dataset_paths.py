"""Item 3 of issue 18: a manifest cannot reach files outside its folder, nor hang on a FIFO.

Before the fix ``/abs/path.png``, ``../private/scan.png`` and symlinks pointing outside were
copied into the media folder and shown to workers.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from bot.db import Database
from bot.tasks import datasets
from bot.tasks.models import Task
from bot.tasks.safety import NotARegularFile, PathOutsideDataset, confined_path
from tests.admin.conftest import Cli
from tests.admin.helpers import classify_project, jpeg, mask_project


def _tasks(db: Database) -> int:
    with db.read_session() as s:
        return int(s.execute(select(func.count(Task.id))).scalar_one())


def _manifest(path: Path, images: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "external_id"])
        for i, image in enumerate(images):
            writer.writerow([image, f"e{i}"])
    return path


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """ds/ (the dataset, with a good image and a symlink out), private/ (someone's scans)."""
    ds, private = tmp_path / "ds", tmp_path / "private"
    jpeg(ds / "good.jpg", seed=1)
    jpeg(private / "scan.jpg", seed=2)
    (ds / "link.jpg").symlink_to(private / "scan.jpg")
    (ds / "inner-link.jpg").symlink_to(ds / "good.jpg")  # a symlink that stays inside is fine
    os.mkfifo(ds / "pipe.jpg")
    return {"ds": ds, "private": private}


def test_confined_path_rules(layout: dict[str, Path]) -> None:
    ds, private = layout["ds"], layout["private"]
    assert confined_path(ds, "good.jpg") == (ds / "good.jpg").resolve()
    assert confined_path(ds, str(ds / "good.jpg")) == (ds / "good.jpg").resolve()  # absolute but inside
    assert confined_path(ds, "inner-link.jpg") == (ds / "good.jpg").resolve()
    assert confined_path(ds, "sub/../good.jpg") == (ds / "good.jpg").resolve()
    assert confined_path(ds, "missing.jpg") == (ds / "missing.jpg").resolve()  # the caller says "not found"
    messages = {}
    for name in ("../private/scan.jpg", "../private/nothing-here.jpg", str(private / "scan.jpg"), "link.jpg", "/etc/passwd"):
        with pytest.raises(PathOutsideDataset) as caught:
            confined_path(ds, name)
        messages[name] = str(caught.value).replace(repr(name), "NAME")
    assert len(set(messages.values())) == 1, messages  # existing or not outside: the same words
    assert confined_path(ds, "link.jpg", allow_outside=[private]) == (private / "scan.jpg").resolve()
    started = time.monotonic()
    with pytest.raises(NotARegularFile, match="named pipe"):
        confined_path(ds, "pipe.jpg")
    with pytest.raises(NotARegularFile):
        confined_path(ds, "/dev/zero", allow_outside=[Path("/dev")])
    assert time.monotonic() - started < 1


def test_a_folder_swapped_for_a_symlink_out_is_resolved_again(layout: dict[str, Path]) -> None:
    """Folders' real paths are remembered between rows (``real_dir``); swapping a folder of the
    dataset for a symlink to somewhere else between two checks must not reuse the old answer."""
    ds, private = layout["ds"], layout["private"]
    sub = ds / "sub"
    jpeg(sub / "a.jpg", seed=3)
    jpeg(private / "a.jpg", seed=4)
    assert confined_path(ds, "sub/a.jpg") == (sub / "a.jpg").resolve()
    sub.rename(ds / "old-sub")
    sub.symlink_to(private, target_is_directory=True)
    with pytest.raises(PathOutsideDataset):
        confined_path(ds, "sub/a.jpg")
    sub.unlink()
    (ds / "old-sub").rename(sub)
    assert confined_path(ds, "sub/a.jpg") == (sub / "a.jpg").resolve()
    with pytest.raises(PathOutsideDataset):  # ".." after a symlinked folder follows the link
        (ds / "hop").symlink_to(private / "..", target_is_directory=True)
        confined_path(ds, "hop/ds/../private/a.jpg")


def test_manifest_rows_outside_the_folder_are_bad_rows(db: Database, layout: dict[str, Path], tmp_path: Path) -> None:
    ds, private = layout["ds"], layout["private"]
    project = classify_project(db)
    assert project.id is not None
    manifest = _manifest(
        ds / "m.csv",
        ["good.jpg", "../private/scan.jpg", str(private / "scan.jpg"), "link.jpg", "pipe.jpg", "../private/nothing.jpg"],
    )
    media = tmp_path / "media"
    with pytest.raises(datasets.LoadRejected) as caught:
        datasets.load(db, project.id, manifest, media_dir=media, copy=True)
    problems = {p.row: p.problem for p in caught.value.problems}
    assert sorted(problems) == [3, 4, 5, 6, 7]  # every row but good.jpg (line 2)
    assert all("outside the dataset folder" in problems[r] for r in (3, 4, 5, 7))
    assert "named pipe" in problems[6]
    assert problems[3].replace("scan", "X") == problems[7].replace("nothing", "X")  # no hint that scan.jpg exists
    assert _tasks(db) == 0 and not media.exists()

    summary = datasets.load(db, project.id, manifest, media_dir=media, copy=True, skip_bad=True)
    assert summary.created == 1 and len(summary.bad) == 5
    copied = list((media / "originals").rglob("*.jpg"))
    assert len(copied) == 1 and copied[0].read_bytes() == (ds / "good.jpg").read_bytes()


def test_allow_outside_lets_the_operator_opt_in(cli: Cli, db: Database, layout: dict[str, Path]) -> None:
    ds, private = layout["ds"], layout["private"]
    project = classify_project(db)
    manifest = _manifest(ds / "m.csv", ["good.jpg", "../private/scan.jpg", "link.jpg"])
    refused = cli("load", str(project.id), str(manifest), ok=False)
    assert refused.exit_code == 1 and "outside the dataset folder" in refused.stderr and _tasks(db) == 0
    allowed = cli("load", str(project.id), str(manifest), "--allow-outside", str(private))
    assert "2 task(s) added" in allowed.stdout and "1 duplicate(s)" in allowed.stdout


def test_folder_symlinks_out_and_masks_out_are_refused(db: Database, layout: dict[str, Path]) -> None:
    ds, private = layout["ds"], layout["private"]
    project = classify_project(db)
    assert project.id is not None
    rows, problems, _ = datasets.read_source(ds)
    assert [r.image for r in rows] == ["good.jpg", "inner-link.jpg"]  # the FIFO is not a file; link.jpg is out
    assert [(p.file, "outside the dataset folder" in p.problem) for p in problems] == [("link.jpg", True)]

    masks = mask_project(db, name="m")
    assert masks.id is not None
    jpeg(ds / "a.jpg", size=(40, 30), seed=5)
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[5:20, 10:30] = 255
    PILImage.fromarray(mask).save(private / "a_mask.png")
    rows_file = ds / "rows.jsonl"
    rows_file.write_text(json.dumps({"image": "a.jpg", "mask": "../private/a_mask.png"}) + "\n")
    with pytest.raises(datasets.LoadRejected, match="outside the dataset folder"):
        datasets.load(db, masks.id, rows_file, media_dir=None, copy=False)


def test_coco_file_names_stay_inside(db: Database, layout: dict[str, Path]) -> None:
    ds = layout["ds"]
    project = mask_project(db)
    assert project.id is not None
    coco = {
        "images": [{"id": 1, "file_name": "../private/scan.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 20, 1, 20, 20]]}],
        "categories": [{"id": 1, "name": "thing"}],
    }
    path = ds / "coco.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(datasets.LoadRejected, match="outside the dataset folder"):
        datasets.load(db, project.id, path, media_dir=None, copy=False)
    assert _tasks(db) == 0
