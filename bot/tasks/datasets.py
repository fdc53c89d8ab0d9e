"""Loading datasets into a project: a folder of images, a CSV/JSONL manifest, or a COCO file.

A load streams its source in chunks of ``CHUNK_ROWS`` rows (see :mod:`bot.tasks.load_stream`),
so its memory does not grow with the source; for each chunk:

1. *Validate* every row: the image decodes and is within limits (checked on a thread pool;
   Pillow and hashlib release the GIL, so two cores are used), labels and golden answers are
   valid for the project type, masks decode and match the image size, external ids are unique
   (across chunks too: the ids seen so far are kept, not the rows).
2. *Write* the good rows in batches, each its own short transaction so the running bot (which
   shares the database) is never locked out for long, as ``loading`` tasks: invisible to
   workers until the whole source is in, then published in one commit (:func:`finish_load`).

By default a load is all-or-nothing: at the first bad row what was written is deleted and no
more is written, the rest is still checked, and ``LoadRejected`` lists every bad row; with
``skip_bad`` the bad rows are reported and the rest is loaded. A folder and CSV/JSONL manifests
are read row by row; JSON sources (COCO, Label Studio) and YOLO folders are parsed whole, as a
JSON document must be, and then go through the same chunks.

Reloading is idempotent: ``(project, external_id)`` is unique and rows already loaded are
counted, not duplicated; identical content (same image bytes, prelabel, mask and golden answer)
under another name is loaded once. Images are stored once per content hash, either copied into
``MEDIA_DIR/originals`` or referenced where they are.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from PIL import Image as PILImage
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col

from bot.autoseg import rle
from bot.clock import utcnow
from bot.db import Database
from bot.db.tables import table
from bot.tasks import intake, media
from bot.tasks.formats.common import Selection, declared_size
from bot.tasks.load_stream import CHUNK_ROWS, LoadTasks, SeenIds, chunked
from bot.tasks.media import CheckedImage, ImageRejected
from bot.tasks.models import (
    BOX_CORRECT,
    BOX_VALUES,
    CONFIRM_VALUES,
    PIN_MASK,
    PIN_NONE,
    Image,
    Project,
    ProjectType,
    Task,
    TaskKind,
    TaskStatus,
)
from bot.tasks.projects import labels as project_labels
from bot.tasks.safety import confined_path, csv_cell

log = structlog.get_logger("crowdpin.datasets")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MANIFEST_COLUMNS = ("image", "external_id", "prelabel", "mask", "golden", "kind", "explanation")
MAX_EXTERNAL_ID = 256
MAX_PRELABEL = 256
BATCH_ROWS = 1000
_LOOKUP_CHUNK = 500  # IN (...) lists stay far below SQLite's and PostgreSQL's parameter limits
_YES_NO = {"yes": "yes", "no": "no", "true": "yes", "false": "no", "1": "yes", "0": "no", "correct": "yes", "wrong": "no"}

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages: ``check`` (images) and ``write`` (rows)."""


class DatasetError(ValueError):
    """The source as a whole cannot be read (unknown format, no ``image`` column...)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad row: which file, which row (1-based line / entry number), and what is wrong."""

    file: str
    row: int | None
    problem: str

    def __str__(self) -> str:
        where = f"{self.file}, row {self.row}" if self.row is not None else self.file
        return f"{where}: {self.problem}"


class LoadRejected(ValueError):
    """All-or-nothing load refused: nothing was written. ``problems`` names every bad row."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        head = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(f"{len(problems)} bad row(s), nothing was loaded: {head}{more}")


@dataclass(slots=True)
class Row:
    """One manifest row / COCO annotation / folder file, as written in the source."""

    file: str
    row: int
    image: str
    image_path: Path
    external_id: str | None = None
    prelabel: str | None = None
    mask: Any = None  # PNG path (str), RLE JSON text (str), RLE dict, or ("polygons", [...])
    golden: str | None = None
    kind: str | None = None
    explanation: str | None = None
    declared_size: tuple[int, int] | None = None  # COCO's (width, height)
    base: Path | None = None  # folder that relative mask paths start from (the manifest's)
    allow_outside: tuple[Path, ...] = ()  # folders outside ``base`` the operator allowed (--allow-outside)
    box: Any = None  # confirm-box: (unit, [4 numbers]), see bot.tasks.boxes.pixel_box
    score: float | None = None  # the model's score of the prediction
    src: dict[str, Any] | None = None  # the source's record of the prediction, for exports back to it
    show_score: bool = False


@dataclass(slots=True)
class ReadyRow:
    """A validated row, ready to be written."""

    file: str
    row: int
    external_id: str
    checked: CheckedImage
    kind: TaskKind
    prelabel: str | None
    mask_rle: str | None
    golden: str | None
    explanation: str | None
    prediction_json: str | None = None

    def content_key(self) -> tuple[str, str, str, str]:
        return (self.checked.sha256, self.prelabel or "", _geometry_key(self.mask_rle, self.prediction_json), self.golden or "")


def _geometry_key(mask_rle: str | None, prediction_json: str | None) -> str:
    """What a task shows besides image and label: its mask, or its predicted box."""
    if mask_rle:
        return hashlib.sha1(mask_rle.encode()).hexdigest()
    if prediction_json:
        box = json.loads(prediction_json).get("box")
        return f"box:{box}" if box else ""
    return ""


@dataclass(slots=True)
class LoadSummary:
    source: str
    rows: int = 0
    created: int = 0  # new tasks
    already_loaded: int = 0  # same external_id and image as an existing task
    duplicates: int = 0  # same content as another row or task under another name
    images_new: int = 0
    images_reused: int = 0
    resumed: int = 0  # tasks an interrupted earlier load had written, published by this one
    partial_files_removed: int = 0  # ``.part`` files an interrupted copy left in the media folder
    left_out: int = 0  # predictions not sent to people (--min-score / --max-score / --sample)
    bad: list[Problem] = field(default_factory=list)

    @property
    def loaded_ok(self) -> bool:
        return not self.bad


# --------------------------------------------------------------------------- reading sources


def clean_text(value: Any) -> str | None:
    """A source's cell as stripped text; None when it is missing or blank."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _row_from_mapping(data: dict[str, Any], *, file: str, row: int, base: Path, allow_outside: Sequence[Path] = ()) -> Row:
    image = clean_text(data.get("image"))
    if image is None:
        raise ValueError("the 'image' field is empty")
    mask = data.get("mask")
    if isinstance(mask, str):
        mask = mask.strip() or None
    return Row(
        file=file,
        row=row,
        image=image,
        image_path=confined_path(base, image, allow_outside),  # PathOutsideDataset / NotARegularFile: a bad row
        external_id=clean_text(data.get("external_id")),
        prelabel=clean_text(data.get("prelabel")),
        mask=mask,
        golden=clean_text(data.get("golden")),
        kind=clean_text(data.get("kind")),
        explanation=clean_text(data.get("explanation")),
        base=base,
        allow_outside=tuple(allow_outside),
    )


Item = Row | Problem
"""What a streaming reader yields, in source order: a row, or why a row could not be read."""


def _split(items: Iterable[Item]) -> tuple[list[Row], list[Problem]]:
    rows: list[Row] = []
    problems: list[Problem] = []
    for item in items:
        if isinstance(item, Problem):
            problems.append(item)
        else:
            rows.append(item)
    return rows, problems


def iter_folder(folder: Path, allow_outside: Sequence[Path] = ()) -> Iterator[Item]:
    """Every image file under ``folder`` (recursively, hidden files skipped), sorted by path.

    The default external id is the path relative to the folder, so reloading the same folder,
    or the same folder with new files added, only adds the new files. Only the relative names
    are held (to sort them); each :class:`Row` is made when it is consumed.
    """
    names = sorted(
        (
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        ),
        key=lambda rel: rel.split("/"),  # the order of the Paths themselves (part by part)
    )
    for i, rel in enumerate(names, start=1):
        try:  # a symlink in the folder may point anywhere
            real = confined_path(folder, rel, allow_outside)
        except ValueError as exc:
            yield Problem(rel, i, str(exc))
            continue
        yield Row(file=rel, row=i, image=rel, image_path=real, external_id=rel)


def read_folder(folder: Path, allow_outside: Sequence[Path] = ()) -> tuple[list[Row], list[Problem]]:
    """:func:`iter_folder` as lists."""
    return _split(iter_folder(folder, allow_outside))


def iter_csv(path: Path, allow_outside: Sequence[Path] = ()) -> Iterator[Item]:
    """The rows of a CSV manifest, one at a time (the file is never held whole).

    Raises :class:`DatasetError` (when iterated) if the file as a whole cannot be read."""
    name = path.name
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{name}: the manifest is empty")
            columns = [h.strip().lower() for h in header]
            if "image" not in columns:
                raise DatasetError(f"{name}: the header has no 'image' column (found: {', '.join(columns) or 'nothing'})")
            for values in reader:
                line = reader.line_num
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(columns):
                    yield Problem(name, line, f"has {len(values)} fields, the header has {len(columns)}")
                    continue
                try:
                    row = _row_from_mapping(
                        dict(zip(columns, values, strict=True)), file=name, row=line, base=path.parent, allow_outside=allow_outside
                    )
                except ValueError as exc:
                    yield Problem(name, line, str(exc))
                    continue
                yield row
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DatasetError(f"{name}: not a readable CSV file ({exc})") from None


def read_csv(path: Path, allow_outside: Sequence[Path] = ()) -> tuple[list[Row], list[Problem]]:
    """:func:`iter_csv` as lists."""
    return _split(iter_csv(path, allow_outside))


def iter_jsonl(path: Path, allow_outside: Sequence[Path] = ()) -> Iterator[Item]:
    """The rows of a JSON Lines manifest, one at a time (the file is never held whole)."""
    name = path.name
    try:
        with path.open(encoding="utf-8-sig") as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield Problem(name, line_no, f"not valid JSON ({exc.msg} at column {exc.colno})")
                    continue
                if not isinstance(data, dict):
                    yield Problem(name, line_no, "each line must be a JSON object")
                    continue
                try:
                    row = _row_from_mapping(data, file=name, row=line_no, base=path.parent, allow_outside=allow_outside)
                except ValueError as exc:
                    yield Problem(name, line_no, str(exc))
                    continue
                yield row
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_jsonl(path: Path, allow_outside: Sequence[Path] = ()) -> tuple[list[Row], list[Problem]]:
    """:func:`iter_jsonl` as lists."""
    return _split(iter_jsonl(path, allow_outside))


def _coco_image_path(base: Path, file_name: str, images_root: Path | None, allow_outside: Sequence[Path] = ()) -> Path:
    """Where ``file_name`` is: under ``--images-root`` when given, else next to the COCO file or
    in its ``images/`` folder; never outside those (nor outside ``allow_outside``)."""
    if images_root is not None:
        return confined_path(images_root, file_name, allow_outside)
    inside_images = base / "images"
    if not os.path.isabs(file_name) and not (base / file_name).exists() and (inside_images / file_name).exists():
        return confined_path(inside_images, file_name, allow_outside)
    return confined_path(base, file_name, allow_outside)


def coco_refs(
    name: str, index: int, ann: Any, images: dict[Any, dict[str, Any]], categories: dict[Any, Any], problems: list[Problem]
) -> tuple[str, dict[str, Any], str, str] | None:
    """What every COCO annotation must name (its image, that image's file, its category), checked
    once for the segmentation and the detection loaders: ``(label, image entry, file_name,
    category)``, or None with the reason added to ``problems``."""
    if not isinstance(ann, dict):
        problems.append(Problem(name, index, "annotation is not a JSON object"))
        return None
    label = f"annotation {ann.get('id', index)}"
    image = images.get(ann.get("image_id"))
    if image is None:
        problems.append(Problem(name, index, f"{label}: image_id {ann.get('image_id')!r} is not in 'images'"))
        return None
    file_name = str(image.get("file_name") or "").strip()
    if not file_name:
        problems.append(Problem(name, index, f"{label}: image {image.get('id')!r} has no file_name"))
        return None
    category = categories.get(ann.get("category_id"))
    if not category:
        problems.append(Problem(name, index, f"{label}: category_id {ann.get('category_id')!r} is not in 'categories'"))
        return None
    return label, image, file_name, str(category)


def read_coco(
    path: Path, data: dict[str, Any], images_root: Path | None = None, allow_outside: Sequence[Path] = ()
) -> tuple[list[Row], list[Problem]]:
    """One row per annotation with a segmentation (polygons or RLE); prelabel = category name.

    The external id is ``<file_name>#<annotation id>``, so one image with three objects gives
    three confirm-mask tasks and reloading the file adds nothing.
    """
    name = path.name
    problems: list[Problem] = []
    images = data.get("images")
    annotations = data.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise DatasetError(f"{name}: a COCO file needs 'images' and 'annotations' lists")
    categories = {c.get("id"): str(c.get("name", "")).strip() for c in data.get("categories") or [] if isinstance(c, dict)}
    by_id: dict[Any, dict[str, Any]] = {}
    for entry in images:
        if isinstance(entry, dict) and "id" in entry:
            by_id[entry["id"]] = entry
    rows: list[Row] = []
    for index, ann in enumerate(annotations, start=1):
        refs = coco_refs(name, index, ann, by_id, categories, problems)
        if refs is None:
            continue
        label, image, file_name, category = refs
        segmentation = ann.get("segmentation")
        if isinstance(segmentation, list):
            mask: Any = ("polygons", segmentation)
        elif isinstance(segmentation, dict):
            mask = segmentation
        else:
            problems.append(Problem(name, index, f"{label}: has no segmentation (polygons or RLE)"))
            continue
        try:
            image_path = _coco_image_path(path.parent, file_name, images_root, allow_outside)
        except ValueError as exc:
            problems.append(Problem(name, index, f"{label}: {exc}"))
            continue
        declared = declared_size(image)
        rows.append(
            Row(
                file=name,
                row=index,
                image=file_name,
                image_path=image_path,
                external_id=f"{file_name}#{ann.get('id', index)}",
                prelabel=category,
                mask=mask,
                golden=clean_text(ann.get("golden")),
                declared_size=declared,
            )
        )
    return rows, problems


Opener = Callable[[], Iterator[Item]]
"""Starts a fresh pass over a source's rows (a load reads its source twice: to count, then to load)."""


def read_source(
    source: Path,
    *,
    images_root: Path | None = None,
    allow_outside: Sequence[Path] = (),
    fmt: str | None = None,
    project_type: str = ProjectType.CONFIRM_MASK,
    coco_gt: Path | None = None,
) -> tuple[list[Row], list[Problem], str]:
    """Rows and row-level problems of any supported source, as lists; returns (rows, problems, format).

    :func:`open_source` is the same without holding the rows of a folder or a CSV/JSONL manifest.
    """
    opener, found = open_source(
        source, images_root=images_root, allow_outside=allow_outside, fmt=fmt, project_type=project_type, coco_gt=coco_gt
    )
    return (*_split(opener()), found)


def _replay(rows: list[Row], problems: list[Problem]) -> Opener:
    def opener() -> Iterator[Item]:
        yield from rows
        yield from problems

    return opener


def open_source(
    source: Path,
    *,
    images_root: Path | None = None,
    allow_outside: Sequence[Path] = (),
    fmt: str | None = None,
    project_type: str = ProjectType.CONFIRM_MASK,
    coco_gt: Path | None = None,
) -> tuple[Opener, str]:
    """How to read the rows and row-level problems of any supported source; returns (opener, format).

    A folder and a CSV or JSONL manifest are *streamed*: each call of the opener reads the
    source again, one row at a time, so a load holds a chunk of rows, never the whole source.
    JSON sources (COCO, COCO detection, Label Studio, a JSON list of rows) and YOLO folders
    are read here, whole, and replayed: a JSON document is parsed whole anyway, and their
    rows (one per annotation) are small next to it.

    Every file a row names must resolve (symlinks followed) inside the source's folder, or
    inside one of ``allow_outside``: anything else is a bad row (see :func:`confined_path`).
    ``fmt`` forces a format (else it is detected); a COCO file makes confirm-box tasks from its
    boxes in a confirm-box project and confirm-mask tasks from its masks otherwise. COCO
    detection, YOLO and Label Studio are read by :mod:`bot.tasks.formats`.
    """
    from bot.tasks import formats

    if not source.exists():
        raise DatasetError(f"{source}: no such file or folder")
    if fmt is not None and fmt not in formats.FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; use one of: {', '.join(formats.FORMATS)}")
    boxes = project_type == ProjectType.CONFIRM_BOX
    if fmt in ("yolo", "label-studio") or (fmt == "coco" and boxes):
        rows, problems = formats.read(
            source, fmt, project_type=project_type, images_root=images_root, coco_gt=coco_gt, allow_outside=allow_outside
        )
        return _replay(rows, problems), fmt
    if fmt is None and source.is_dir() and formats.detect(source) == "yolo":
        return _replay(*formats.read(source, "yolo", project_type=project_type, allow_outside=allow_outside)), "yolo"
    if source.is_dir():
        return (lambda: iter_folder(source, allow_outside)), "folder"
    if fmt is None and source.suffix.lower() in (".yaml", ".yml"):
        return _replay(*formats.read(source, "yolo", project_type=project_type, allow_outside=allow_outside)), "yolo"
    suffix = source.suffix.lower()
    if suffix == ".csv":
        return (lambda: iter_csv(source, allow_outside)), "csv"
    if suffix in (".jsonl", ".ndjson"):
        return (lambda: iter_jsonl(source, allow_outside)), "jsonl"
    if suffix == ".json":
        rows, problems, found = _read_json(
            source,
            data=json_document(source),
            images_root=images_root,
            allow_outside=allow_outside,
            fmt=fmt,
            project_type=project_type,
            coco_gt=coco_gt,
        )
        return _replay(rows, problems), found
    if suffix in IMAGE_SUFFIXES:
        raise DatasetError(f"{source.name}: give the folder that holds the images, not one image")
    raise DatasetError(f"{source.name}: unknown source type (use a folder, .csv, .jsonl or a COCO .json)")


def json_document(source: Path) -> Any:
    """A JSON source parsed whole; ``DatasetError`` says why it cannot be (the loader's and the
    formats' one reader of JSON documents)."""
    try:
        with source.open(encoding="utf-8-sig") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{source.name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{source.name}: not UTF-8 text ({exc.reason})") from None


def _read_json(
    source: Path,
    *,
    data: Any,
    images_root: Path | None,
    allow_outside: Sequence[Path],
    fmt: str | None,
    project_type: str,
    coco_gt: Path | None,
) -> tuple[list[Row], list[Problem], str]:
    """A parsed ``.json`` source: COCO, another detected format, or a list of manifest rows."""
    from bot.tasks import formats

    boxes = project_type == ProjectType.CONFIRM_BOX
    if isinstance(data, dict) and ("annotations" in data or "images" in data):
        if boxes:
            rows, problems = formats.read(
                source, "coco", project_type=project_type, images_root=images_root, data=data, allow_outside=allow_outside
            )
            return rows, problems, "coco"
        return (*read_coco(source, data, images_root, allow_outside), "coco")
    detected = formats.detect(source, data) if fmt is None else None
    if detected is not None:
        rows, problems = formats.read(
            source,
            detected,
            project_type=project_type,
            images_root=images_root,
            coco_gt=coco_gt,
            data=data,
            allow_outside=allow_outside,
        )
        return rows, problems, "coco" if detected == "coco-results" else detected
    if isinstance(data, list):  # a JSON array of manifest rows
        rows, problems = [], []
        for i, item in enumerate(data, start=1):
            if not isinstance(item, dict):
                problems.append(Problem(source.name, i, "each entry must be a JSON object"))
                continue
            try:
                rows.append(_row_from_mapping(item, file=source.name, row=i, base=source.parent, allow_outside=allow_outside))
            except ValueError as exc:
                problems.append(Problem(source.name, i, str(exc)))
        return rows, problems, "json"
    raise DatasetError(f"{source.name}: neither a COCO file (images + annotations) nor a list of rows")


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class Limits:
    max_pixels: int = 40_000_000
    max_bytes: int = 30 * 1024 * 1024


def _check_all(paths: Sequence[Path], limits: Limits, progress: Progress | None, threads: int | None) -> dict[Path, CheckedImage | str]:
    """check_image on every distinct path, in parallel; value is the result or the reason."""
    out: dict[Path, CheckedImage | str] = {}

    def one(path: Path) -> tuple[Path, CheckedImage | str]:
        try:
            return path, media.check_image(path, max_pixels=limits.max_pixels, max_bytes=limits.max_bytes)
        except ImageRejected as exc:
            return path, str(exc)

    total = len(paths)
    workers = threads or min(8, 2 * (os.cpu_count() or 1))
    if total < 16 or workers <= 1:
        results: Iterable[tuple[Path, CheckedImage | str]] = map(one, paths)
        for done, (path, result) in enumerate(results, start=1):
            out[path] = result
            if progress:
                progress("check", done, total)
        return out
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crowdpin-check") as pool:
        for done, (path, result) in enumerate(pool.map(one, paths, chunksize=8), start=1):
            out[path] = result
            if progress and (done % 64 == 0 or done == total):
                progress("check", done, total)
    return out


def _rle_text(mask: np.ndarray) -> str:
    return json.dumps(rle.encode(mask), separators=(",", ":"))


def _mask_from_rle_dict(value: dict[str, Any], height: int, width: int) -> str:
    size = value.get("size")
    counts = value.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise ValueError("RLE needs 'size': [height, width]")
    if [int(size[0]), int(size[1])] != [height, width]:
        raise ValueError(f"mask size {size[0]}x{size[1]} (h x w) does not match the image {height}x{width}")
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            raise ValueError("RLE counts must be non-negative integers")
        counts_text = rle.counts_to_string(counts)
    elif isinstance(counts, str):
        counts_text = counts
    else:
        raise ValueError("RLE needs 'counts' (a string or a list of integers)")
    normalized = {"size": [height, width], "counts": counts_text}
    try:
        decoded = rle.decode(normalized)
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"RLE does not decode: {exc}") from None
    if not decoded.any():
        raise ValueError("mask is empty")
    return json.dumps(normalized, separators=(",", ":"))


def _mask_from_polygons(polygons: Any, height: int, width: int) -> str:
    """Rasterised with pycocotools, the reference for COCO polygons, so a mask loaded from a
    polygon is pixel for pixel what ``pycocotools`` reads from the same file."""
    from pycocotools import mask as coco_mask

    if not isinstance(polygons, list) or not polygons:
        raise ValueError("segmentation has no polygon")
    for poly in polygons:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or not all(isinstance(v, (int, float)) for v in poly):
            raise ValueError("a polygon needs at least 3 points as [x0, y0, x1, y1, ...]")
    merged = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
    decoded = rle.decode({"size": [height, width], "counts": merged["counts"]})
    if not decoded.any():
        raise ValueError("polygon covers no pixel of the image")
    return _rle_text(decoded)


def _mask_from_png(path: Path, height: int, width: int, limits: Limits) -> str:
    if not path.is_file():
        raise ValueError(f"mask file {path.name} not found")
    try:
        with PILImage.open(path) as img:
            if img.width * img.height > limits.max_pixels:
                raise ValueError(f"mask {path.name} is {img.width}x{img.height}, over the pixel limit")
            if (img.height, img.width) != (height, width):
                raise ValueError(f"mask {path.name} is {img.width}x{img.height}, the image is {width}x{height}")
            if img.mode in ("RGBA", "LA", "PA"):
                array = np.asarray(img.getchannel("A"))
            else:
                array = np.asarray(img.convert("L"))
    except (OSError, SyntaxError, PILImage.DecompressionBombError) as exc:
        raise ValueError(f"mask {path.name} is not a readable image ({exc})") from None
    mask = array > 0
    if not mask.any():
        raise ValueError(f"mask {path.name} is empty (all pixels are 0)")
    return _rle_text(mask)


def _mask_rle(row: Row, checked: CheckedImage, limits: Limits) -> str | None:
    value = row.mask
    if value is None:
        return None
    height, width = checked.height, checked.width
    if isinstance(value, tuple) and value and value[0] == "polygons":
        return _mask_from_polygons(value[1], height, width)
    if isinstance(value, dict):
        return _mask_from_rle_dict(value, height, width)
    if isinstance(value, str):
        if value.startswith("{"):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"mask is not valid RLE JSON ({exc.msg})") from None
            if not isinstance(parsed, dict):
                raise ValueError("mask JSON must be an object with size and counts")
            return _mask_from_rle_dict(parsed, height, width)
        mask_path = confined_path(row.base or row.image_path.parent, value, row.allow_outside)
        return _mask_from_png(mask_path, height, width, limits)
    raise ValueError("mask must be a PNG file name or a COCO RLE object")


def _golden_value(project: Project, value: str) -> str:
    if project.type == ProjectType.CLASSIFY:
        if value not in project_labels(project):
            raise ValueError(f"golden answer {value!r} is not one of the labels ({', '.join(project_labels(project))})")
        return value
    if project.type == ProjectType.CONFIRM_BOX:
        answer = value.strip().lower().replace(" ", "_").replace("-", "_")
        answer = {"yes": BOX_CORRECT, "true": BOX_CORRECT, "1": BOX_CORRECT}.get(answer, answer)
        if answer not in BOX_VALUES:
            raise ValueError(f"golden answer {value!r} must be {', '.join(BOX_VALUES)} for a confirm-box project")
        return answer
    if project.type == ProjectType.CONFIRM_MASK:
        normalized = _YES_NO.get(value.lower())
        if normalized is None or normalized not in CONFIRM_VALUES:
            raise ValueError(f"golden answer {value!r} must be yes or no for a confirm-mask project")
        return normalized
    if value.lower() not in (PIN_NONE, PIN_MASK):
        raise ValueError(f"golden answer {value!r} must be 'mask' or 'none' for a magic-pin project")
    return value.lower()


def validate_row(project: Project, row: Row, checked: CheckedImage, limits: Limits) -> ReadyRow:
    """Everything about one row except uniqueness; raises ValueError with the reason."""
    external_id = row.external_id or row.image
    if len(external_id) > MAX_EXTERNAL_ID:
        raise ValueError(f"external_id is {len(external_id)} characters, at most {MAX_EXTERNAL_ID}")
    if row.declared_size is not None and row.declared_size != (checked.width, checked.height):
        w, h = row.declared_size
        raise ValueError(f"the COCO file says {w}x{h} but {row.image} is {checked.width}x{checked.height}")
    prelabel = row.prelabel
    if prelabel is not None:
        if len(prelabel) > MAX_PRELABEL:
            raise ValueError(f"prelabel is longer than {MAX_PRELABEL} characters")
        if project.type == ProjectType.CLASSIFY and prelabel not in project_labels(project):
            raise ValueError(f"prelabel {prelabel!r} is not one of the labels ({', '.join(project_labels(project))})")
    if row.mask is not None and project.type in (ProjectType.CLASSIFY, ProjectType.CONFIRM_BOX):
        raise ValueError(f"masks are for confirm-mask and magic-pin projects, this one is {project.type}")
    prediction_json = _prediction(project, row, checked)
    mask_rle = _mask_rle(row, checked, limits)
    if project.type == ProjectType.CONFIRM_MASK and mask_rle is None:
        raise ValueError("a confirm-mask task needs a mask (PNG file or COCO RLE)")
    golden = _golden_value(project, row.golden) if row.golden is not None else None
    if row.kind is None:
        kind = TaskKind.GOLDEN if golden is not None else TaskKind.NORMAL
    else:
        try:
            kind = TaskKind(row.kind.lower())
        except ValueError:
            raise ValueError(f"kind {row.kind!r} must be normal, golden or training") from None
        if kind != TaskKind.NORMAL and golden is None:
            raise ValueError(f"a {kind.value} task needs the right answer in 'golden'")
    return ReadyRow(
        file=row.file,
        row=row.row,
        external_id=external_id,
        checked=checked,
        kind=kind,
        prelabel=prelabel,
        mask_rle=mask_rle,
        golden=golden,
        explanation=row.explanation,
        prediction_json=prediction_json,
    )


def _prediction(project: Project, row: Row, checked: CheckedImage) -> str | None:
    """The task's ``prediction_json``: the checked box of a confirm-box task, or the source's record."""
    from bot.tasks.boxes import Prediction, pixel_box

    if project.type == ProjectType.CONFIRM_BOX:
        if row.box is None:
            raise ValueError("a confirm-box task needs a box (COCO detection, YOLO or Label Studio rectangles)")
        if not row.prelabel:
            raise ValueError("a confirm-box task needs the predicted class")
        box = pixel_box(row.box, checked.width, checked.height)
        return Prediction(box, row.score, row.show_score, row.src or {}).to_json()
    if row.box is not None:
        raise ValueError(f"boxes are for confirm-box projects, this one is {project.type}")
    if row.src or row.score is not None:
        return Prediction(None, row.score, False, row.src or {}).to_json()
    return None


# --------------------------------------------------------------------------- plan & write


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True, slots=True)
class _Existing:
    """A task the project already holds under an external id the source names."""

    sha256: str
    task_id: int
    status: str


def _existing_by_external_id(session: Session, project_id: int, external_ids: Sequence[str]) -> dict[str, _Existing]:
    """external_id -> (image sha256, task id, status) of tasks already in the project."""
    found: dict[str, _Existing] = {}
    for chunk in _chunks(external_ids, _LOOKUP_CHUNK):
        rows = session.execute(
            select(col(Task.external_id), col(Image.sha256), col(Task.id), col(Task.status))
            .join(Image, col(Image.id) == col(Task.image_id))
            .where(col(Task.project_id) == project_id, col(Task.external_id).in_(chunk))
        )
        for ext, sha, task_id, status in rows:
            found[ext] = _Existing(sha, task_id, status)
    return found


def _existing_content(session: Session, project_id: int, hashes: Sequence[str]) -> set[tuple[str, str, str, str]]:
    """Content keys of existing tasks whose image is among ``hashes`` (bounded, never the whole project)."""
    keys: set[tuple[str, str, str, str]] = set()
    for chunk in _chunks(hashes, _LOOKUP_CHUNK):
        rows = session.execute(
            select(col(Image.sha256), col(Task.prelabel), col(Task.mask_rle), col(Task.golden), col(Task.prediction_json))
            .join(Image, col(Image.id) == col(Task.image_id))
            .where(col(Task.project_id) == project_id, col(Image.sha256).in_(chunk))
        )
        for sha, prelabel, mask_rle, golden, prediction_json in rows:
            keys.add((sha, prelabel or "", _geometry_key(mask_rle, prediction_json), golden or ""))
    return keys


class ChunkPlanner:
    """Phase 1 of a load, one chunk of rows at a time: check the images, validate the rows, and
    sort out duplicates against the chunks before (``seen``) and the project. Holds nothing of a
    chunk once :meth:`plan` returns; counts go to ``summary``, tasks of a killed earlier load
    that this source names again are taken over into ``tasks`` (published with this load)."""

    def __init__(
        self,
        project: Project,
        *,
        limits: Limits = Limits(),
        threads: int | None = None,
        summary: LoadSummary | None = None,
        tasks: LoadTasks | None = None,
    ) -> None:
        assert project.id is not None
        self.project = project
        self.limits = limits
        self.threads = threads
        self.summary = summary if summary is not None else LoadSummary(source="")
        self.tasks = tasks if tasks is not None else LoadTasks()
        self.seen = SeenIds()

    def plan(self, session: Session, rows: Sequence[Row], progress: Progress | None = None) -> tuple[list[ReadyRow], list[Problem]]:
        """The chunk's rows to write, and its bad rows (in source order)."""
        assert self.project.id is not None
        summary = self.summary
        problems: list[Problem] = []
        distinct = list(dict.fromkeys(row.image_path for row in rows))
        checked = _check_all(distinct, self.limits, progress, self.threads)
        unique: list[ReadyRow] = []
        for row in rows:
            result = checked[row.image_path]
            if isinstance(result, str):
                problems.append(Problem(row.file, row.row, f"image {row.image}: {result}"))
                continue
            try:
                item = validate_row(self.project, row, result, self.limits)
            except ValueError as exc:
                problems.append(Problem(row.file, row.row, str(exc)))
                continue
            # Uniqueness inside the source, this chunk and every one before it.
            content = _digest(item.content_key())
            earlier = self.seen.first(item.external_id)
            if earlier is not None:
                file, line, earlier_content = earlier
                if earlier_content == content:
                    summary.duplicates += 1
                else:
                    problems.append(Problem(item.file, item.row, f"external_id {item.external_id!r} is already used by {file} row {line}"))
                continue
            self.seen.add(item.external_id, item.file, item.row, content)
            unique.append(item)
        del checked
        # Against what the project already holds (earlier chunks of this load included).
        existing = _existing_by_external_id(session, self.project.id, [r.external_id for r in unique])
        fresh: list[ReadyRow] = []
        for item in unique:
            found = existing.get(item.external_id)
            if found is None:
                fresh.append(item)
            elif found.sha256 == item.checked.sha256:
                summary.already_loaded += 1
                if found.status == TaskStatus.LOADING.value:  # written by a load that was killed: ours now
                    self.tasks.adopted.append(found.task_id)
            else:
                problems.append(Problem(item.file, item.row, f"external_id {item.external_id!r} is already loaded with a different image"))
        content_keys = _existing_content(session, self.project.id, list(dict.fromkeys(r.checked.sha256 for r in fresh)))
        to_write: list[ReadyRow] = []
        for item in fresh:
            key = item.content_key()
            if key in content_keys:
                summary.duplicates += 1
                continue
            content_keys.add(key)
            to_write.append(item)
        return to_write, problems


def _digest(key: tuple[str, ...]) -> bytes:
    """16 bytes standing for a content key (kept per row by :class:`SeenIds`, so not the key itself)."""
    return hashlib.blake2b(json.dumps(key).encode(), digest_size=16).digest()


def plan(
    session: Session,
    project: Project,
    rows: list[Row],
    *,
    limits: Limits = Limits(),
    progress: Progress | None = None,
    threads: int | None = None,
) -> tuple[list[ReadyRow], list[Problem], LoadSummary]:
    """Phase 1 for a list of rows as one chunk: the rows to write, the problems and the counts so far."""
    planner = ChunkPlanner(project, limits=limits, threads=threads, summary=LoadSummary(source="", rows=len(rows)))
    to_write, problems = planner.plan(session, rows, progress)
    problems.sort(key=lambda p: (p.file, p.row or 0))
    return to_write, problems, planner.summary


@cache
def _defaults(model: type[SQLModel]) -> dict[str, Any]:
    """Column defaults as the ORM would fill them, for Core bulk inserts of ``model``."""
    blank = model()
    values = {c.name: getattr(blank, c.name) for c in table(model).columns if c.name != "id"}
    return {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}


def _stored_paths(
    db: Database, batch: Sequence[ReadyRow], media_dir: Path | None, copy: bool, pool: ThreadPoolExecutor | None
) -> dict[str, str]:
    """Where each image of the batch not yet in the database will live; copies are made here,
    in parallel and *outside* the write transaction, so the bot never waits on file copies.
    (A copy made for an image another loader stores meanwhile is harmless: same content, same name.)"""
    pending: dict[str, CheckedImage] = {}
    for item in batch:
        pending.setdefault(item.checked.sha256, item.checked)
    with db.read_session() as session:
        for chunk in _chunks(list(pending), _LOOKUP_CHUNK):
            for (sha,) in session.execute(select(col(Image.sha256)).where(col(Image.sha256).in_(chunk))):
                pending.pop(sha, None)
    if not copy:
        return {sha: str(checked.path.resolve()) for sha, checked in pending.items()}
    if media_dir is None:
        raise ValueError("copy mode needs a media folder (MEDIA_DIR)")

    def one(checked: CheckedImage) -> str:
        return str(media.copy_to_media(checked.path, checked.sha256, media_dir))

    items = list(pending.values())
    copied = pool.map(one, items, chunksize=8) if pool is not None and len(items) > 16 else map(one, items)
    return dict(zip(pending, copied, strict=True))


@dataclass(slots=True)
class Written:
    """What one batch wrote: tasks created (their ids), images new and reused."""

    task_ids: list[int]
    images_new: int
    images_reused: int


def _write_batch(session: Session, project: Project, batch: Sequence[ReadyRow], paths: dict[str, str]) -> Written:
    """Insert the batch's images and tasks (Core bulk inserts: a few ms per thousand rows)."""
    hashes = list(dict.fromkeys(r.checked.sha256 for r in batch))
    ids: dict[str, int] = {}

    def lookup(chunked: Sequence[str]) -> None:
        for chunk in _chunks(chunked, _LOOKUP_CHUNK):
            ids.update(
                {sha: iid for iid, sha in session.execute(select(col(Image.id), col(Image.sha256)).where(col(Image.sha256).in_(chunk)))}
            )

    lookup(hashes)
    reused = len(ids)
    now = utcnow()
    pending: dict[str, CheckedImage] = {}
    for item in batch:
        sha = item.checked.sha256
        if sha not in ids and sha not in pending:
            pending[sha] = item.checked
    missing = [sha for sha in pending if sha not in paths]
    if missing:  # stored when we looked, gone now: images are never deleted, so this is a bug
        raise RuntimeError(f"images {missing[:3]} vanished from the database during the load")
    new_images = [
        {**_defaults(Image), "sha256": sha, "path": paths[sha], "width": c.width, "height": c.height, "created_at": now}
        for sha, c in pending.items()
    ]
    if new_images:
        session.execute(insert(Image), new_images)
        lookup(list(pending))
    task_defaults = _defaults(Task)
    tasks = [
        {
            **task_defaults,
            "project_id": project.id,
            "image_id": ids[item.checked.sha256],
            "external_id": item.external_id,
            "kind": item.kind.value,
            "prelabel": item.prelabel,
            "mask_rle": item.mask_rle,
            "golden": item.golden,
            "explanation": item.explanation,
            "status": TaskStatus.LOADING.value,  # published by finish_load() when the whole load is in
            "prediction_json": item.prediction_json,
            "created_at": now,
        }
        for item in batch
    ]
    session.execute(insert(Task), tasks)
    task_ids: list[int] = []
    for chunk in _chunks([item.external_id for item in batch], _LOOKUP_CHUNK):  # ours: the insert would have failed otherwise
        task_ids.extend(
            session.execute(select(col(Task.id)).where(col(Task.project_id) == project.id, col(Task.external_id).in_(chunk))).scalars()
        )
    return Written(task_ids, len(new_images), reused)


def _write_slow(session: Session, project: Project, batch: Sequence[ReadyRow], media_dir: Path | None, copy: bool) -> Written:
    """Row by row through the shared intake helpers: used after a batch met a concurrent loader."""
    created: list[int] = []
    new = reused = 0
    for item in batch:
        image, image_created = media.store_image(session, item.checked, media_dir=media_dir, copy=copy)
        new += image_created
        reused += not image_created
        task, task_created = intake.add_task(
            session,
            project,
            image,
            external_id=item.external_id,
            kind=item.kind,
            prelabel=item.prelabel,
            mask_rle=item.mask_rle,
            golden=item.golden,
            explanation=item.explanation,
            status=TaskStatus.LOADING,
            prediction_json=item.prediction_json,
        )
        if task_created:
            assert task.id is not None
            created.append(task.id)
    return Written(created, new, reused)


def write(
    db: Database,
    project_id: int,
    rows: Sequence[ReadyRow],
    *,
    media_dir: Path | None,
    copy: bool,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
    threads: int | None = None,
    tasks: LoadTasks | None = None,
) -> tuple[int, int, int]:
    """Phase 2: one short transaction per batch, so the bot's writes interleave with the load.

    Tasks are written ``loading`` (invisible); the ids of those created go to ``tasks``, which
    publishes them when the whole load is in. Returns (tasks created, images new, images reused).
    """
    created = new = reused = 0
    total = len(rows)
    # Copying is mostly waiting on the file system (creating files), so more threads than cores.
    workers = max(8, threads or 0)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crowdpin-copy") as pool:
        for start in range(0, total, batch_rows):
            batch = rows[start : start + batch_rows]
            result = _write_one(db, project_id, batch, _stored_paths(db, batch, media_dir, copy, pool), media_dir, copy, start)
            if tasks is not None:
                tasks.created.extend(result.task_ids)
            created += len(result.task_ids)
            new += result.images_new
            reused += result.images_reused
            if progress:
                progress("write", min(start + batch_rows, total), total)
    return created, new, reused


def _write_one(
    db: Database, project_id: int, batch: Sequence[ReadyRow], paths: dict[str, str], media_dir: Path | None, copy: bool, start: int
) -> Written:
    try:
        with db.session() as session:
            project = session.get(Project, project_id)
            assert project is not None
            return _write_batch(session, project, batch, paths)
    except IntegrityError:
        # Someone (another loader) inserted some of the same images or tasks meanwhile.
        log.info("load.batch_conflict_retry", start=start, size=len(batch))
        with db.session() as session:
            project = session.get(Project, project_id)
            assert project is not None
            return _write_slow(session, project, batch, media_dir, copy)


def finish_load(db: Database, project_id: int, tasks: LoadTasks) -> int:
    """Make the tasks of a finished load visible to workers, in one transaction (one commit): a
    load is invisible until it has finished. ``tasks`` are the ones it wrote and the ones a
    killed earlier load had written for rows this source names again (so rerunning a killed
    load finishes it). Leftovers it does not name stay ``loading``: since loads stream, a killed
    load may have been refused further on, so nothing but a finished load may publish a row.
    Returns how many tasks became visible."""
    return tasks.publish(db, project_id)


@dataclass(slots=True)
class _Count:
    """The first, cheap pass over a source: how many entries, and how many rows are within the
    score window (the sample is drawn among those)."""

    items: int = 0
    kept: int = 0


def _count(opener: Opener, selection: Selection | None) -> _Count:
    """Reads the whole source once without keeping anything: totals for the progress bars and
    the sample, and an unreadable file (bad UTF-8, broken CSV quoting) fails here, before any write."""
    count = _Count()
    for item in opener():
        count.items += 1
        if isinstance(item, Row) and (selection is None or selection.keep(item.score)):
            count.kept += 1
    return count


def _selected(
    items: Iterable[Item],
    selection: Selection | None,
    chosen: set[int] | None,
    show_score: bool,
    summary: LoadSummary,
    problems: list[Problem],
) -> Iterator[Row]:
    """The rows the load works on, in source order: reader problems go to ``problems``, rows
    outside the score window or the sample are counted in ``summary.left_out``."""
    kept = -1
    for item in items:
        if isinstance(item, Problem):
            problems.append(item)
            continue
        if selection is not None and not selection.keep(item.score):
            summary.left_out += 1
            continue
        kept += 1
        if chosen is not None and kept not in chosen:
            summary.left_out += 1
            continue
        item.show_score = show_score
        yield item


def _shifted(progress: Progress | None, stage: str, before: int, total: int) -> Progress | None:
    """``progress`` for the part of a stage one chunk does: ``done`` counts from ``before`` of ``total``."""
    if progress is None:
        return None
    return lambda _stage, done, _total: progress(stage, min(before + done, total), total)


def load(
    db: Database,
    project_id: int,
    source: Path,
    *,
    copy: bool | None = None,
    media_dir: Path | None = None,
    skip_bad: bool = False,
    images_root: Path | None = None,
    limits: Limits = Limits(),
    progress: Progress | None = None,
    threads: int | None = None,
    allow_outside: Sequence[Path] = (),
    fmt: str | None = None,
    coco_gt: Path | None = None,
    selection: Selection | None = None,
    show_score: bool = False,
    chunk_rows: int | None = None,
) -> LoadSummary:
    """Load ``source`` into the project, all-or-nothing unless ``skip_bad``.

    The source is streamed in chunks of ``chunk_rows`` (default :data:`CHUNK_ROWS`) rows: each
    is checked, validated, deduplicated (against the chunks before and the project) and written
    as ``loading`` tasks, then dropped, so memory does not grow with the source (a few hundred
    bytes a row, for the duplicate index). Nothing is visible to workers until the whole source
    is in (:func:`finish_load`). At the first bad row of an all-or-nothing load the tasks written
    so far are deleted and nothing more is written, but every row is still checked so that
    ``LoadRejected`` names them all; an error or interruption deletes them too.

    ``copy=None`` uses the project's ``media_mode``. Raises ``DatasetError`` when the source
    cannot be read at all and ``LoadRejected`` (nothing loaded) when a row is bad.
    ``selection`` sends only some predictions to people (a score window, a sample): it picks
    among the rows read, before any is checked, so an audit of a huge set checks only its sample.
    """
    with db.read_session() as session:
        project = session.get(Project, project_id)
        if project is None:
            raise DatasetError(f"no project with id {project_id}")
        session.expunge(project)
    opener, fmt = open_source(
        source, images_root=images_root, allow_outside=allow_outside, fmt=fmt, project_type=project.type, coco_gt=coco_gt
    )
    if fmt == "coco" and project.type not in (ProjectType.CONFIRM_MASK, ProjectType.CONFIRM_BOX):
        raise DatasetError(
            f"a COCO file makes confirm-mask tasks (confirm-box tasks from its boxes); project {project.id} is {project.type}"
        )
    if fmt == "yolo" and project.type != ProjectType.CONFIRM_BOX:
        raise DatasetError(f"YOLO boxes make confirm-box tasks; project {project.id} is {project.type}")
    if selection is not None and not selection.active:
        selection = None
    counted = _count(opener, selection)
    chosen = selection.sampled(counted.kept) if selection is not None else None
    total = counted.kept if chosen is None else len(chosen)
    summary = LoadSummary(source=str(source), rows=counted.items)
    tasks = LoadTasks()
    planner = ChunkPlanner(project, limits=limits, threads=threads, summary=summary, tasks=tasks)
    use_copy = (project.media_mode == "copy") if copy is None else copy  # "ref" / "reference": in place
    if use_copy and media_dir is not None:
        summary.partial_files_removed = media.remove_partial_copies(media_dir)
    problems: list[Problem] = []
    checked = queued = 0
    try:
        for chunk in chunked(_selected(opener(), selection, chosen, show_score, summary, problems), chunk_rows or CHUNK_ROWS):
            with db.read_session() as session:
                to_write, bad = planner.plan(session, chunk, _shifted(progress, "check", checked, total))
            checked += len(chunk)
            if progress:
                progress("check", checked, total)
            problems.extend(bad)
            del chunk
            if problems and not skip_bad:
                if tasks.created:  # refused: what was written goes, and nothing more is
                    tasks.discard(db, project_id)
                continue
            created, new, reused = write(
                db,
                project_id,
                to_write,
                media_dir=media_dir,
                copy=use_copy,
                progress=_shifted(progress, "write", queued, max(total, queued + len(to_write))),
                threads=threads,
                tasks=tasks,
            )
            queued += len(to_write)
            summary.created += created
            summary.already_loaded += len(to_write) - created
            summary.images_new += new
            summary.images_reused += reused
        if problems and not skip_bad:
            problems.sort(key=lambda p: (p.file, p.row or 0))
            log.info("load.rejected", project_id=project_id, source=str(source), bad=len(problems))
            raise LoadRejected(problems)
    except BaseException:
        _discard_quietly(db, project_id, tasks)
        raise
    if progress and queued:
        progress("write", queued, queued)
    summary.resumed = max(0, finish_load(db, project_id, tasks) - summary.created)
    summary.bad = sorted(problems, key=lambda p: (p.file, p.row or 0))
    log.info(
        "load.done",
        project_id=project_id,
        source=str(source),
        format=fmt,
        created=summary.created,
        already=summary.already_loaded,
        duplicates=summary.duplicates,
        bad=len(summary.bad),
        resumed=summary.resumed,
        partial_files_removed=summary.partial_files_removed,
    )
    return summary


def _discard_quietly(db: Database, project_id: int, tasks: LoadTasks) -> None:
    """Delete what a failed load wrote; a failure here must not hide the one that got us here
    (the tasks stay ``loading``, invisible, and a rerun of the load takes them over)."""
    if not tasks.created:
        return
    try:
        tasks.discard(db, project_id)
    except Exception:
        log.exception("load.discard_failed", project_id=project_id, tasks=len(tasks.created))


def write_report(problems: Iterable[Problem], path: Path) -> Path:
    """The bad rows as CSV (file, row, problem): open it in a spreadsheet, fix, reload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "row", "problem"])
        for p in problems:
            writer.writerow([csv_cell(p.file), "" if p.row is None else p.row, csv_cell(p.problem)])
    return path
