"""Loading datasets: every format in, every class of bad input, all-or-nothing, --skip-bad,
copy/reference media, and idempotent reloads."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from pycocotools.coco import COCO
from sqlalchemy import func, select

from bot.autoseg import rle
from bot.db import Database
from bot.tasks import datasets
from bot.tasks.datasets import DatasetError, Limits, LoadRejected
from bot.tasks.models import Image, Task
from tests.admin.conftest import Cli
from tests.admin.helpers import classify_project, coco_file, jpeg, mask_project, png_bomb, samples

# pycocotools 2.0 calls numpy with an old keyword; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _tasks(db: Database, project_id: int) -> list[Task]:
    with db.read_session() as s:
        return list(s.execute(select(Task).where(Task.project_id == project_id).order_by(Task.id)).scalars())


def _count_images(db: Database) -> int:
    with db.read_session() as s:
        return s.execute(select(func.count(Image.id))).scalar_one()


def _write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------ formats in


def test_folder_load_copies_and_is_idempotent(db: Database, tmp_path: Path) -> None:
    project = classify_project(db)
    folder = tmp_path / "photos"
    for i in range(5):
        jpeg(folder / ("sub" if i % 2 else "") / f"p{i}.jpg", seed=i)
    (folder / "notes.txt").write_text("not an image, not a row")
    (folder / ".hidden").mkdir()
    jpeg(folder / ".hidden" / "x.jpg", seed=99)
    media_dir = tmp_path / "media"
    summary = datasets.load(db, project.id, folder, media_dir=media_dir, copy=True)  # type: ignore[arg-type]
    assert (summary.created, summary.images_new, summary.bad) == (5, 5, [])
    tasks = _tasks(db, project.id)  # type: ignore[arg-type]
    assert sorted(t.external_id for t in tasks) == ["p0.jpg", "p2.jpg", "p4.jpg", "sub/p1.jpg", "sub/p3.jpg"]
    with db.read_session() as s:
        paths = [Path(p) for p in s.execute(select(Image.path)).scalars()]
    assert all(p.is_relative_to(media_dir.resolve()) and p.exists() for p in paths)
    # Again, and again with one new file: only the new file is added.
    again = datasets.load(db, project.id, folder, media_dir=media_dir)  # type: ignore[arg-type]
    assert (again.created, again.already_loaded, again.images_new) == (0, 5, 0)
    jpeg(folder / "p9.jpg", seed=9)
    third = datasets.load(db, project.id, folder, media_dir=media_dir)  # type: ignore[arg-type]
    assert (third.created, third.already_loaded) == (1, 5)
    assert len(_tasks(db, project.id)) == 6 and _count_images(db) == 6  # type: ignore[arg-type]


def test_reference_mode_keeps_images_in_place_and_dedupes_content(db: Database, tmp_path: Path) -> None:
    project = classify_project(db)
    folder = tmp_path / "photos"
    jpeg(folder / "a.jpg", seed=1)
    jpeg(folder / "b.jpg", seed=2)
    (folder / "copy_of_a.jpg").write_bytes((folder / "a.jpg").read_bytes())
    media_dir = tmp_path / "media"
    summary = datasets.load(db, project.id, folder, media_dir=media_dir, copy=False)  # type: ignore[arg-type]
    # identical bytes under another name: one image, one task (the same content is labelled once)
    assert (summary.created, summary.duplicates, summary.images_new) == (2, 1, 2)
    with db.read_session() as s:
        paths = sorted(s.execute(select(Image.path)).scalars())
    assert paths == sorted(str((folder / n).resolve()) for n in ("a.jpg", "b.jpg"))
    assert not media_dir.exists()
    # The same image in another project reuses the stored image.
    other = classify_project(db, name="other")
    again = datasets.load(db, other.id, folder, media_dir=media_dir, copy=True)  # type: ignore[arg-type]
    assert (again.created, again.images_new, again.images_reused) == (2, 0, 2)


def test_csv_manifest_with_every_column(db: Database, tmp_path: Path) -> None:
    project = classify_project(db, labels=("cat", "dog"))
    base = tmp_path / "ds"
    for i in range(4):
        jpeg(base / "img" / f"{i}.jpg", seed=i)
    manifest = _write_csv(
        base / "manifest.csv",
        [
            {"image": "img/0.jpg", "external_id": "A-0", "prelabel": "cat", "golden": "", "kind": "", "explanation": ""},
            {"image": "img/1.jpg", "external_id": "A-1", "prelabel": "", "golden": "dog", "kind": "", "explanation": ""},
            {"image": "img/2.jpg", "external_id": "", "prelabel": "", "golden": "cat", "kind": "training", "explanation": "ears"},
            {"image": "img/3.jpg", "external_id": "A-3", "prelabel": "", "golden": "dog", "kind": "normal", "explanation": ""},
        ],
    )
    summary = datasets.load(db, project.id, manifest, media_dir=tmp_path / "media")  # type: ignore[arg-type]
    assert summary.created == 4
    by_ext = {t.external_id: t for t in _tasks(db, project.id)}  # type: ignore[arg-type]
    assert set(by_ext) == {"A-0", "A-1", "img/2.jpg", "A-3"}  # default external_id: the image path
    assert (by_ext["A-0"].prelabel, by_ext["A-0"].kind, by_ext["A-0"].golden) == ("cat", "normal", None)
    assert (by_ext["A-1"].kind, by_ext["A-1"].golden) == ("golden", "dog")
    assert (by_ext["img/2.jpg"].kind, by_ext["img/2.jpg"].golden, by_ext["img/2.jpg"].explanation) == ("training", "cat", "ears")
    assert (by_ext["A-3"].kind, by_ext["A-3"].golden) == ("normal", "dog")


def test_jsonl_manifest_with_png_and_rle_masks(db: Database, tmp_path: Path) -> None:
    project = mask_project(db)
    base = tmp_path / "ds"
    jpeg(base / "a.jpg", size=(40, 30), seed=1)
    jpeg(base / "b.jpg", size=(40, 30), seed=2)
    jpeg(base / "c.jpg", size=(40, 30), seed=3)
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:20, 10:30] = True
    PILImage.fromarray((mask * 255).astype(np.uint8)).save(base / "a_mask.png")
    manifest = _write_jsonl(
        base / "rows.jsonl",
        [
            {"image": "a.jpg", "mask": "a_mask.png", "prelabel": "box"},
            {"image": "b.jpg", "mask": json.dumps(rle.encode(mask)), "prelabel": "box", "golden": "yes"},
            {"image": "c.jpg", "mask": {"size": [30, 40], "counts": rle.string_to_counts(rle.encode(~mask)["counts"])}},
        ],
    )
    assert datasets.load(db, project.id, manifest, media_dir=tmp_path / "m").created == 3  # type: ignore[arg-type]
    tasks = {t.external_id: t for t in _tasks(db, project.id)}  # type: ignore[arg-type]
    assert np.array_equal(rle.decode(json.loads(tasks["a.jpg"].mask_rle)), mask)  # type: ignore[arg-type]
    assert np.array_equal(rle.decode(json.loads(tasks["b.jpg"].mask_rle)), mask)  # type: ignore[arg-type]
    assert np.array_equal(rle.decode(json.loads(tasks["c.jpg"].mask_rle)), ~mask)  # type: ignore[arg-type]
    assert (tasks["b.jpg"].kind, tasks["b.jpg"].golden) == ("golden", "yes")


@pytest.mark.parametrize("uncompressed", [False, True])
def test_coco_load_makes_confirm_mask_tasks_identical_to_pycocotools(db: Database, tmp_path: Path, uncompressed: bool) -> None:
    project = mask_project(db)
    folder = tmp_path / "coco"
    shapes = samples(folder / "images", count=6)
    path, data = coco_file(folder, shapes, rle_every=2, uncompressed=uncompressed)
    summary = datasets.load(db, project.id, path, media_dir=tmp_path / "media")  # type: ignore[arg-type]
    assert summary.created == 6
    reference = COCO(str(path))
    tasks = {t.external_id: t for t in _tasks(db, project.id)}  # type: ignore[arg-type]
    for ann in data["annotations"]:
        image = next(i for i in data["images"] if i["id"] == ann["image_id"])
        task = tasks[f"{image['file_name']}#{ann['id']}"]
        category = next(c["name"] for c in data["categories"] if c["id"] == ann["category_id"])
        assert task.prelabel == category
        ours = rle.decode(json.loads(task.mask_rle))  # type: ignore[arg-type]
        assert np.array_equal(ours, reference.annToMask(ann).astype(bool)), ann["id"]
    assert datasets.load(db, project.id, path, media_dir=tmp_path / "media").already_loaded == 6  # type: ignore[arg-type]


# ------------------------------------------------------------------ bad input


def _bad_dataset(base: Path) -> Path:
    """A manifest where rows 2 and 7 are good and every other row has a different problem."""
    jpeg(base / "good1.jpg", seed=1)
    jpeg(base / "good2.jpg", seed=2)
    (base / "text.jpg").write_text("this is not a picture")
    truncated = jpeg(base / "whole.jpg", size=(200, 200), seed=3).read_bytes()
    (base / "truncated.jpg").write_bytes(truncated[: len(truncated) // 3])
    png_bomb(base / "bomb.png")
    jpeg(base / "tiny.jpg", size=(8, 8), seed=4)
    PILImage.new("RGB", (40, 40)).save(base / "odd.ppm")
    jpeg(base / "other.jpg", seed=5)
    return _write_csv(
        base / "manifest.csv",
        [
            {"image": "good1.jpg", "prelabel": "cat", "golden": ""},  # line 2
            {"image": "missing.jpg", "prelabel": "", "golden": ""},  # 3
            {"image": "text.jpg", "prelabel": "", "golden": ""},  # 4
            {"image": "truncated.jpg", "prelabel": "", "golden": ""},  # 5
            {"image": "bomb.png", "prelabel": "", "golden": ""},  # 6
            {"image": "good2.jpg", "prelabel": "", "golden": "dog"},  # 7
            {"image": "tiny.jpg", "prelabel": "", "golden": ""},  # 8
            {"image": "odd.ppm", "prelabel": "", "golden": ""},  # 9
            {"image": "other.jpg", "prelabel": "horse", "golden": ""},  # 10
            {"image": "other.jpg", "prelabel": "", "golden": "zebra"},  # 11
        ],
    )


EXPECTED = {
    3: "cannot read file",
    4: "not a readable image",
    5: "not a readable image",
    6: "decompression bomb",
    8: "too small",
    9: "format PPM is not supported",
    10: "prelabel 'horse' is not one of the labels",
    11: "golden answer 'zebra' is not one of the labels",
}


def test_every_bad_row_is_named_and_nothing_is_loaded(db: Database, tmp_path: Path) -> None:
    project = classify_project(db)
    manifest = _bad_dataset(tmp_path / "ds")
    with pytest.raises(LoadRejected) as caught:
        datasets.load(db, project.id, manifest, media_dir=tmp_path / "media")  # type: ignore[arg-type]
    problems = {p.row: p for p in caught.value.problems}
    assert set(problems) == set(EXPECTED)
    for row, needle in EXPECTED.items():
        assert problems[row].file == "manifest.csv"
        assert needle in problems[row].problem, (row, problems[row].problem)
    assert "manifest.csv, row 3" in str(caught.value)
    assert _tasks(db, project.id) == [] and _count_images(db) == 0  # type: ignore[arg-type]
    assert not (tmp_path / "media").exists()


def test_skip_bad_loads_the_good_rows_and_reports_the_rest(cli: Cli, db: Database, tmp_path: Path) -> None:
    project = classify_project(db)
    manifest = _bad_dataset(tmp_path / "ds")
    refused = cli("load", str(project.id), str(manifest), ok=False)
    assert refused.exit_code == 1
    assert "nothing was loaded" in refused.stderr and "missing.jpg" in refused.stderr
    assert _tasks(db, project.id) == []  # type: ignore[arg-type]
    report = tmp_path / "bad.csv"
    result = cli("load", "cats", str(manifest), "--skip-bad", "--report", str(report))
    assert "2 task(s) added" in result.stdout
    assert sorted(t.external_id for t in _tasks(db, project.id)) == ["good1.jpg", "good2.jpg"]  # type: ignore[arg-type]
    with report.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {int(r["row"]): r["problem"] for r in rows}.keys() == EXPECTED.keys()
    assert all(r["file"] == "manifest.csv" for r in rows)
    # Without --report, --skip-bad still writes one (in the working directory) and says where.
    again = cli("load", "cats", str(manifest), "--skip-bad")
    assert "0 task(s) added, 2 already loaded" in again.stdout
    default_report = tmp_path / f"load-report-p{project.id}-manifest.csv.csv"
    assert default_report.exists() and str(default_report) in again.stderr.replace("\n", "")


def test_limits_on_bytes_and_pixels(db: Database, tmp_path: Path) -> None:
    project = classify_project(db)
    folder = tmp_path / "f"
    jpeg(folder / "big.jpg", size=(300, 300), seed=1)
    with pytest.raises(LoadRejected, match=r"over the .* limit"):
        datasets.load(db, project.id, folder, media_dir=None, copy=False, limits=Limits(max_bytes=1000))  # type: ignore[arg-type]
    with pytest.raises(LoadRejected, match="possible decompression bomb"):
        datasets.load(db, project.id, folder, media_dir=None, copy=False, limits=Limits(max_pixels=50_000))  # type: ignore[arg-type]
    assert _tasks(db, project.id) == []  # type: ignore[arg-type]


def test_bad_masks_and_field_values(db: Database, tmp_path: Path) -> None:
    project = mask_project(db)
    base = tmp_path / "ds"
    jpeg(base / "a.jpg", size=(40, 30), seed=1)
    PILImage.new("L", (20, 20), 255).save(base / "wrong_size.png")
    PILImage.new("L", (40, 30), 0).save(base / "empty.png")
    good = rle.encode(np.ones((30, 40), dtype=bool))
    rows: list[object] = [
        {"image": "a.jpg", "external_id": "1"},  # 1: no mask
        {"image": "a.jpg", "external_id": "2", "mask": "nowhere.png"},  # 2
        {"image": "a.jpg", "external_id": "3", "mask": "wrong_size.png"},  # 3
        {"image": "a.jpg", "external_id": "4", "mask": "empty.png"},  # 4
        {"image": "a.jpg", "external_id": "5", "mask": {"size": [30, 41], "counts": good["counts"]}},  # 5
        {"image": "a.jpg", "external_id": "6", "mask": {"size": [30, 40], "counts": [5, 7]}},  # 6
        {"image": "a.jpg", "external_id": "7", "mask": "{not json"},  # 7
        {"image": "a.jpg", "external_id": "8", "mask": good, "golden": "maybe"},  # 8
        {"image": "a.jpg", "external_id": "9", "mask": good, "kind": "weird"},  # 9
        {"image": "a.jpg", "external_id": "10", "mask": good, "kind": "training"},  # 10
        "{broken json",  # 11
        ["not", "an", "object"],  # 12
        {"external_id": "13"},  # 13: no image
        {"image": "a.jpg", "external_id": "x" * 300, "mask": good},  # 14
        {"image": "a.jpg", "external_id": "ok", "mask": good},  # 15: good
        {"image": "a.jpg", "external_id": "ok", "mask": rle.encode(np.eye(30, 40, dtype=bool))},  # 16: id reused
    ]
    manifest = _write_jsonl(base / "rows.jsonl", rows)
    with pytest.raises(LoadRejected) as caught:
        datasets.load(db, project.id, manifest, media_dir=None, copy=False)  # type: ignore[arg-type]
    got = {p.row: p.problem for p in caught.value.problems}
    expected = {
        1: "needs a mask",
        2: "mask file nowhere.png not found",
        3: "wrong_size.png is 20x20, the image is 40x30",
        4: "empty",
        5: "does not match the image",
        6: "RLE does not decode",
        7: "not valid RLE JSON",
        8: "must be yes or no",
        9: "kind 'weird'",
        10: "needs the right answer",
        11: "not valid JSON",
        12: "must be a JSON object",
        13: "'image' field is empty",
        14: "at most 256",
        16: "already used by rows.jsonl row 15",
    }
    assert set(got) == set(expected), got
    for row, needle in expected.items():
        assert needle in got[row], (row, got[row])
    assert _tasks(db, project.id) == []  # type: ignore[arg-type]


def test_classify_project_refuses_masks_and_coco(db: Database, tmp_path: Path) -> None:
    project = classify_project(db)
    base = tmp_path / "ds"
    jpeg(base / "a.jpg", size=(40, 30))
    manifest = _write_jsonl(base / "r.jsonl", [{"image": "a.jpg", "mask": rle.encode(np.ones((30, 40), dtype=bool))}])
    with pytest.raises(LoadRejected, match="masks are for confirm-mask and magic-pin"):
        datasets.load(db, project.id, manifest, media_dir=None, copy=False)  # type: ignore[arg-type]
    shapes = samples(tmp_path / "coco" / "images", count=1)
    path, _ = coco_file(tmp_path / "coco", shapes)
    with pytest.raises(DatasetError, match="COCO file makes confirm-mask tasks"):
        datasets.load(db, project.id, path, media_dir=None, copy=False)  # type: ignore[arg-type]


def test_unreadable_sources_are_refused_whole(db: Database, tmp_path: Path) -> None:
    project = classify_project(db)
    (tmp_path / "noimage.csv").write_text("file,label\na.jpg,cat\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bad.json").write_text("{oops")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    (tmp_path / "latin1.csv").write_bytes("image\nb\xe9b\xe9.jpg\n".encode("latin-1"))
    (tmp_path / "data.xml").write_text("<x/>")
    cases = {
        "noimage.csv": "no 'image' column",
        "empty.csv": "manifest is empty",
        "bad.json": "not valid JSON",
        "other.json": "neither a COCO file",
        "latin1.csv": "not UTF-8",
        "data.xml": "unknown source type",
        "nothing-here": "no such file or folder",
    }
    for name, needle in cases.items():
        with pytest.raises(DatasetError, match=needle):
            datasets.load(db, project.id, tmp_path / name, media_dir=None, copy=False)  # type: ignore[arg-type]


def test_bad_csv_rows_and_conflicting_reload(db: Database, tmp_path: Path) -> None:
    project = classify_project(db)
    base = tmp_path / "ds"
    jpeg(base / "a.jpg", seed=1)
    jpeg(base / "b.jpg", seed=2)
    (base / "m.csv").write_text("image,external_id\na.jpg,one\nb.jpg,two,extra\n\n")
    with pytest.raises(LoadRejected) as caught:
        datasets.load(db, project.id, base / "m.csv", media_dir=None, copy=False)  # type: ignore[arg-type]
    assert [(p.row, p.problem) for p in caught.value.problems] == [(3, "has 3 fields, the header has 2")]
    (base / "m.csv").write_text("image,external_id\na.jpg,one\n")
    assert datasets.load(db, project.id, base / "m.csv", media_dir=None, copy=False).created == 1  # type: ignore[arg-type]
    # The same external id now pointing at another picture is a conflict, not a silent skip.
    (base / "m.csv").write_text("image,external_id\nb.jpg,one\n")
    with pytest.raises(LoadRejected, match="already loaded with a different image"):
        datasets.load(db, project.id, base / "m.csv", media_dir=None, copy=False)  # type: ignore[arg-type]


def test_bad_coco_annotations(db: Database, tmp_path: Path) -> None:
    project = mask_project(db)
    folder = tmp_path / "coco"
    shapes = samples(folder / "images", count=2)
    path, data = coco_file(folder, shapes, rle_every=0)
    anns = data["annotations"]
    anns.append({"id": 900, "image_id": 12345, "category_id": 1, "segmentation": anns[0]["segmentation"]})
    anns.append({"id": 901, "image_id": 100, "category_id": 77, "segmentation": anns[0]["segmentation"]})
    anns.append({"id": 902, "image_id": 100, "category_id": 1, "bbox": [0, 0, 5, 5]})
    anns.append({"id": 903, "image_id": 100, "category_id": 1, "segmentation": [[1, 2, 3, 4]]})
    data["images"].append({"id": 300, "file_name": "images/shape_000.jpg", "width": 999, "height": 240})
    anns.append({"id": 904, "image_id": 300, "category_id": 1, "segmentation": anns[0]["segmentation"]})
    data["images"].append({"id": 301, "file_name": "images/gone.jpg", "width": 320, "height": 240})
    anns.append({"id": 905, "image_id": 301, "category_id": 1, "segmentation": anns[0]["segmentation"]})
    path.write_text(json.dumps(data))
    with pytest.raises(LoadRejected) as caught:
        datasets.load(db, project.id, path, media_dir=None, copy=False)  # type: ignore[arg-type]
    got = {p.row: p.problem for p in caught.value.problems}
    assert "image_id 12345 is not in 'images'" in got[3]
    assert "category_id 77" in got[4]
    assert "no segmentation" in got[5]
    assert "at least 3 points" in got[6]
    assert "says 999x240" in got[7]
    assert "cannot read file" in got[8]
    assert set(got) == {3, 4, 5, 6, 7, 8}
    summary = datasets.load(db, project.id, path, media_dir=None, copy=False, skip_bad=True)  # type: ignore[arg-type]
    assert summary.created == 2 and len(summary.bad) == 6


def test_a_concurrent_load_of_the_same_rows_creates_no_duplicates(db: Database, tmp_path: Path) -> None:
    """Loader B validated before loader A wrote: B's batch meets A's rows and falls back to the
    row-by-row path, which finds them and adds nothing."""
    project = classify_project(db)
    folder = tmp_path / "photos"
    for i in range(6):
        jpeg(folder / f"{i}.jpg", seed=i)
    rows, problems, _ = datasets.read_source(folder)
    with db.read_session() as s:
        planned_b, bad, _ = datasets.plan(s, project, rows)
    assert not problems and not bad and len(planned_b) == 6
    assert datasets.load(db, project.id, folder, media_dir=tmp_path / "media").created == 6  # type: ignore[arg-type]  # loader A
    created, new_images, reused = datasets.write(db, project.id, planned_b, media_dir=tmp_path / "media", copy=True)  # type: ignore[arg-type]
    assert (created, new_images, reused) == (0, 0, 6)
    assert len(_tasks(db, project.id)) == 6 and _count_images(db) == 6  # type: ignore[arg-type]
