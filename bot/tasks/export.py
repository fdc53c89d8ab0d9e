"""Streamed exports of a project's answers and aggregated results (CSV, JSONL, COCO).

Rows come from the database in chunks (``yield_per``: a server-side cursor on PostgreSQL, the
natively incremental cursor on SQLite, inside a read-only transaction that never takes the
write lock) and are written as they arrive, so memory stays flat however many answers there
are. Timestamps are formatted by the database as ISO 8601 UTC text, which saves parsing a
million datetimes in Python and makes both engines print the same thing.

Workers appear under a pseudonym by default: an HMAC of their id keyed with
``PSEUDONYM_SECRET``, stable across exports (so a buyer can group answers by worker) and
useless for finding the person. ``reveal_workers`` adds the real id, Telegram id and name.

Files are written next to the target and renamed into place at the end, so an interrupted
export never leaves a plausible-looking half file behind.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

import structlog
from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from bot.db import Database
from bot.tasks.models import Answer, Assignment, Image, Project, ProjectType, Task, TaskKind
from bot.tasks.safety import FORMULA_TRIGGERS, csv_cell
from bot.workers.models import Worker

log = structlog.get_logger("crowdpin.export")

CHUNK = 2000  # rows per fetch: memory is a few MB whatever the export size
MASK_TYPES = (ProjectType.CONFIRM_MASK.value, ProjectType.MAGIC_PIN.value)

Progress = Callable[[int, int], None]
"""``progress(rows_done, rows_total)``."""


class What(StrEnum):
    ANSWERS = "answers"
    RESULTS = "results"


class Format(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    COCO = "coco"
    YOLO = "yolo"  # confirm-box projects: a folder (bot.tasks.formats.export)
    LABEL_STUDIO = "label-studio"


class ExportError(ValueError):
    """The export cannot be made as asked (COCO of a classify project, no aggregation...)."""


@dataclass(slots=True)
class ExportSummary:
    path: Path
    what: str
    format: str
    rows: int
    seconds: float


class Pseudonyms:
    """Stable, keyed pseudonyms: the same worker gets the same name in every export."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()
        self._cache: dict[int, str] = {}

    def __call__(self, worker_id: int) -> str:
        name = self._cache.get(worker_id)
        if name is None:
            digest = hmac.new(self._key, f"worker:{worker_id}".encode(), hashlib.sha256).hexdigest()
            name = self._cache[worker_id] = f"w_{digest[:16]}"
        return name


def iso_utc(session: Session, column: Any) -> ColumnElement[str]:
    """The timestamp as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` text, formatted by the database."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    # SQLAlchemy stores SQLite datetimes as UTC text "YYYY-MM-DD HH:MM:SS.ffffff".
    return func.replace(type_coerce(column, String), " ", "T").concat("Z")


def _project(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise ExportError(f"no project with id {project_id}")
    return project


@contextmanager
def _atomic_text(path: Path) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with tmp.open("w", encoding="utf-8", newline="", buffering=1 << 20) as fh:
            yield fh
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _stream(session: Session, stmt: Any, chunk: int = CHUNK) -> Iterator[Sequence[Any]]:
    result = session.execute(stmt, execution_options={"yield_per": chunk, "stream_results": True})
    yield from result.partitions(chunk)


# --------------------------------------------------------------------------- answers

ANSWER_COLUMNS = [
    "answer_id",
    "task_id",
    "external_id",
    "worker",
    "answer",
    "mask_rle",
    "seconds",
    "leased_at",
    "answered_at",
    "status",
    "is_golden",
    "correct",
    "reward",
]
REVEAL_COLUMNS = ["worker_id", "worker_tg_id", "worker_name"]


def answers_query(session: Session, project_id: int, *, reveal: bool) -> Any:
    columns: list[Any] = [
        col(Answer.id),
        col(Answer.task_id),
        col(Task.external_id),
        col(Answer.worker_id),
        col(Answer.value),
        col(Answer.mask_rle),
        col(Answer.seconds),
        iso_utc(session, col(Assignment.leased_at)),
        iso_utc(session, col(Answer.created_at)),
        col(Answer.status),
        col(Answer.is_golden),
        col(Answer.correct),
        col(Answer.reward),
    ]
    stmt = (
        select(*columns).join(Task, col(Task.id) == col(Answer.task_id)).join(Assignment, col(Assignment.id) == col(Answer.assignment_id))
    )
    if reveal:
        stmt = stmt.add_columns(col(Worker.tg_id), col(Worker.name)).join(Worker, col(Worker.id) == col(Answer.worker_id))
    return stmt.where(col(Answer.project_id) == project_id).order_by(col(Answer.id))


def _count_answers(session: Session, project_id: int) -> int:
    return int(session.execute(select(func.count(col(Answer.id))).where(col(Answer.project_id) == project_id)).scalar_one())


def raw_stream(session: Session, stmt: Any, chunk: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    """Plain tuples straight from the driver's cursor, ``chunk`` at a time.

    The answers export is the one hot loop of the admin tools (a million rows must take
    seconds), so it skips SQLAlchemy's per-row result processing: values arrive as the driver
    gives them (booleans may be 0/1 on SQLite). On PostgreSQL the cursor is a named,
    server-side cursor, so the server streams and the client never holds the result set.
    Only for statements whose bound parameters need no conversion (ints, strings).
    """
    connection = session.connection()
    compiled = stmt.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    driver: Any = connection.connection.driver_connection  # psycopg's or sqlite3's own connection
    if connection.dialect.name == "postgresql":
        cursor = driver.cursor(name=f"crowdpin_export_{os.getpid()}_{time.monotonic_ns()}")
        cursor.itersize = chunk
        cursor.execute(str(compiled), compiled.params)
    else:
        cursor = driver.cursor()
        cursor.execute(str(compiled), tuple(compiled.params[name] for name in compiled.positiontup or ()))
    try:
        while rows := cursor.fetchmany(chunk):
            yield rows
    finally:
        cursor.close()


_CSV_BOOL = {None: "", True: "true", False: "false"}  # 1/0 hash like True/False
_JSON_BOOL = {None: "null", True: "true", False: "false"}


def _csv_text(value: str | None) -> str:
    """One CSV field as ``csv.writer`` (QUOTE_MINIMAL) would write it, after :func:`csv_cell`
    (a name or answer starting with ``=`` is shown by a spreadsheet, never run)."""
    if value is None:
        return ""
    if value.startswith(FORMULA_TRIGGERS):
        value = str(csv_cell(value))
    if '"' in value:
        return '"' + value.replace('"', '""') + '"'
    if "," in value or "\n" in value or "\r" in value:
        return '"' + value + '"'
    return value


def _answers_csv(parts: Iterable[Sequence[Any]], fh: IO[str], pseudo: Pseudonyms, reveal: bool, tick: Callable[[int], None]) -> int:
    # Lines are formatted here rather than by csv.writer: only free text (external id, answer,
    # mask, name) can need quoting, and skipping the generic path doubles the speed.
    fh.write(",".join(ANSWER_COLUMNS + (REVEAL_COLUMNS if reveal else [])) + "\n")
    q, b = _csv_text, _CSV_BOOL
    n = 0
    for part in parts:
        if reveal:
            lines = [
                f"{r[0]},{r[1]},{q(r[2])},{pseudo(r[3])},{q(r[4])},{q(r[5])},{r[6]!r},{r[7]},{r[8]},{r[9]},{b[r[10]]},{b[r[11]]},{r[12]},"
                f"{r[3]},{r[13]},{q(r[14])}\n"
                for r in part
            ]
        else:
            lines = [
                f"{r[0]},{r[1]},{q(r[2])},{pseudo(r[3])},{q(r[4])},{q(r[5])},{r[6]!r},{r[7]},{r[8]},{r[9]},{b[r[10]]},{b[r[11]]},{r[12]}\n"
                for r in part
            ]
        fh.write("".join(lines))
        n += len(lines)
        tick(n)
    return n


def _answers_jsonl(parts: Iterable[Sequence[Any]], fh: IO[str], pseudo: Pseudonyms, reveal: bool, tick: Callable[[int], None]) -> int:
    es, b = encode_basestring, _JSON_BOOL
    n = 0
    for part in parts:
        lines = []
        for r in part:
            mask = "null" if r[5] is None else es(r[5])
            line = (
                f'{{"answer_id":{r[0]},"task_id":{r[1]},"external_id":{es(r[2])},"worker":"{pseudo(r[3])}",'
                f'"answer":{es(r[4])},"mask_rle":{mask},"seconds":{r[6]!r},"leased_at":"{r[7]}","answered_at":"{r[8]}",'
                f'"status":{es(r[9])},"is_golden":{b[r[10]]},"correct":{b[r[11]]},"reward":{r[12]}'
            )
            if reveal:
                line += f',"worker_id":{r[3]},"worker_tg_id":{r[13]},"worker_name":{es(r[14])}'
            lines.append(line + "}\n")
        fh.write("".join(lines))
        n += len(lines)
        tick(n)
    return n


# --------------------------------------------------------------------------- results

RESULT_COLUMNS = ["task_id", "external_id", "label", "confidence", "n_answers", "method", "mask_rle"]


def _aggregate(session: Session, project_id: int, method: str) -> Iterator[Any]:
    try:
        from bot.tasks.aggregate import aggregate_project
    except ModuleNotFoundError as exc:
        if exc.name != "bot.tasks.aggregate":
            raise
        raise ExportError("results need the aggregation module (bot.tasks.aggregate), which is not installed yet") from None
    from bot.tasks.aggregate import AggregationError

    try:
        return aggregate_project(session, project_id, method=method)
    except AggregationError as exc:
        raise ExportError(str(exc)) from None


def _chunked(items: Iterable[Any], size: int = 1000) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _results_csv(results: Iterable[Any], fh: IO[str], tick: Callable[[int], None]) -> int:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    n = 0
    for batch in _chunked(results):
        writer.writerows(
            [
                r.task_id,
                csv_cell(r.external_id),
                "" if r.label is None else csv_cell(r.label),
                r.confidence,
                r.n_answers,
                r.method,
                r.mask_rle or "",
            ]
            for r in batch
        )
        n += len(batch)
        tick(n)
    return n


def _results_jsonl(results: Iterable[Any], fh: IO[str], tick: Callable[[int], None]) -> int:
    n = 0
    for batch in _chunked(results):
        fh.write(
            "".join(
                json.dumps(
                    {
                        "task_id": r.task_id,
                        "external_id": r.external_id,
                        "label": r.label,
                        "confidence": r.confidence,
                        "n_answers": r.n_answers,
                        "method": r.method,
                        "mask_rle": r.mask_rle,
                    },
                    ensure_ascii=False,
                )
                + "\n"
                for r in batch
            )
        )
        n += len(batch)
        tick(n)
    return n


# --------------------------------------------------------------------------- COCO


def _coco_file_name(external_id: str) -> str:
    # COCO-loaded tasks are "<file_name>#<annotation id>"; folder loads are the relative path.
    return external_id.rsplit("#", 1)[0] if "#" in external_id else external_id


def _categories(session: Session, project: Project) -> dict[str, int]:
    names = json.loads(project.labels_json or "[]")
    prelabels = session.execute(
        select(col(Task.prelabel)).where(col(Task.project_id) == project.id, col(Task.prelabel).is_not(None)).distinct()
    ).scalars()
    for name in sorted(set(prelabels) - set(names)):
        names.append(name)
    if not names:
        names = [project.name]
    return {name: i for i, name in enumerate(names, start=1)}


def _coco_segmentation(mask_rle: str) -> tuple[dict[str, Any], int, list[float]]:
    from pycocotools import mask as coco_mask

    seg = json.loads(mask_rle)
    c_rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
    area = int(coco_mask.area(c_rle))
    bbox = [float(v) for v in coco_mask.toBbox(c_rle)]
    return {"size": [int(v) for v in seg["size"]], "counts": seg["counts"]}, area, bbox


class _CocoWriter:
    """Writes ``{"info", "categories", "images": [...], "annotations": [...]}`` as it goes."""

    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self._first = True

    def open_section(self, head: str, name: str) -> None:
        self.fh.write(f"{head}{json.dumps(name)}:[")
        self._first = True

    def item(self, obj: dict[str, Any]) -> None:
        self.fh.write(("\n" if self._first else ",\n") + json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
        self._first = False

    def close_section(self) -> None:
        self.fh.write("\n]")


def _coco_header(session: Session, project: Project, writer: _CocoWriter, what: str) -> dict[str, int]:
    categories = _categories(session, project)
    info = {"description": f"crowdpin project {project.id}: {project.name}", "what": what, "project_type": project.type}
    writer.fh.write('{"info":' + json.dumps(info, ensure_ascii=False))
    writer.open_section(",", "categories")
    for name, cid in categories.items():
        writer.item({"id": cid, "name": name, "supercategory": ""})
    writer.close_section()
    writer.open_section(",", "images")
    images = (
        select(col(Image.id), func.min(col(Task.external_id)), col(Image.width), col(Image.height), col(Image.path))
        .join(Task, col(Task.image_id) == col(Image.id))
        .where(col(Task.project_id) == project.id)
        .group_by(col(Image.id), col(Image.width), col(Image.height), col(Image.path))
        .order_by(col(Image.id))
    )
    for part in _stream(session, images):
        for iid, ext, w, h, path in part:
            writer.item({"id": iid, "file_name": _coco_file_name(ext), "width": w, "height": h, "path": path})
    writer.close_section()
    return categories


def _confirmed_mask(project: Project, label: str | None, result_mask: str | None, task_mask: str | None) -> str | None:
    """The mask a result stands for: the aggregated one, else the task's mask when confirmed."""
    if result_mask:
        return result_mask
    if project.type == ProjectType.CONFIRM_MASK and label == "yes":
        return task_mask
    return None


def _coco_results(session: Session, project: Project, method: str, fh: IO[str], tick: Callable[[int], None]) -> int:
    writer = _CocoWriter(fh)
    categories = _coco_header(session, project, writer, "results")
    writer.open_section(",", "annotations")
    n = 0
    assert project.id is not None
    for batch in _chunked(_aggregate(session, project.id, method)):
        ids = [r.task_id for r in batch]
        info = {
            tid: (iid, pre, mask)
            for tid, iid, pre, mask in session.execute(
                select(col(Task.id), col(Task.image_id), col(Task.prelabel), col(Task.mask_rle)).where(col(Task.id).in_(ids))
            )
        }
        for r in batch:
            image_id, prelabel, task_mask = info[r.task_id]
            mask = _confirmed_mask(project, r.label, r.mask_rle, task_mask)
            if not mask:
                continue
            seg, area, bbox = _coco_segmentation(mask)
            category = prelabel if project.type == ProjectType.CONFIRM_MASK else (prelabel or r.label)
            writer.item(
                {
                    "id": r.task_id,
                    "image_id": image_id,
                    "category_id": categories.get(category or "", next(iter(categories.values()))),
                    "segmentation": seg,
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": 0,
                    "external_id": r.external_id,
                    "label": r.label,
                    "confidence": r.confidence,
                    "n_answers": r.n_answers,
                }
            )
            n += 1
        tick(n)
    writer.close_section()
    fh.write("}\n")
    return n


def _coco_answers(session: Session, project: Project, pseudo: Pseudonyms, reveal: bool, fh: IO[str], tick: Callable[[int], None]) -> int:
    writer = _CocoWriter(fh)
    categories = _coco_header(session, project, writer, "answers")
    writer.open_section(",", "annotations")
    stmt = (
        select(
            col(Answer.id),
            col(Answer.task_id),
            col(Task.image_id),
            col(Task.prelabel),
            col(Task.external_id),
            col(Answer.worker_id),
            col(Answer.value),
            col(Answer.mask_rle),
            col(Task.mask_rle),
        )
        .join(Task, col(Task.id) == col(Answer.task_id))
        .where(col(Answer.project_id) == project.id)
        .order_by(col(Answer.id))
    )
    n = 0
    default_category = next(iter(categories.values()))
    for part in _stream(session, stmt, 1000):
        for aid, tid, iid, prelabel, ext, wid, value, answer_mask, task_mask in part:
            mask = _confirmed_mask(project, value, answer_mask, task_mask)
            if not mask:
                continue
            seg, area, bbox = _coco_segmentation(mask)
            item = {
                "id": aid,
                "image_id": iid,
                "category_id": categories.get(prelabel or "", default_category),
                "segmentation": seg,
                "area": area,
                "bbox": bbox,
                "iscrowd": 0,
                "task_id": tid,
                "external_id": ext,
                "worker": pseudo(wid),
                "answer": value,
            }
            if reveal:
                item["worker_id"] = wid
            writer.item(item)
            n += 1
        tick(n)
    writer.close_section()
    fh.write("}\n")
    return n


# --------------------------------------------------------------------------- entry point


def export(
    db: Database,
    project_id: int,
    *,
    what: What | str,
    fmt: Format | str,
    out: Path,
    secret: str,
    reveal_workers: bool = False,
    method: str = "auto",
    progress: Progress | None = None,
    include_rejected: bool = False,
) -> ExportSummary:
    """Write one export file; returns how many rows (answers, results or COCO annotations).

    Results of a confirm-box project (and YOLO / Label Studio exports of any project) are the
    verified set in the source's format (:mod:`bot.tasks.formats.export`); ``include_rejected``
    adds the rejected and unverified predictions, flagged.
    """
    what = What(what)
    fmt = Format(fmt)
    started = time.perf_counter()
    pseudo = Pseudonyms(secret)
    with db.read_session() as session:
        project = _project(session, project_id)
        if fmt in (Format.YOLO, Format.LABEL_STUDIO) or (what == What.RESULTS and project.type == ProjectType.CONFIRM_BOX.value):
            if what != What.RESULTS:
                raise ExportError(f"{fmt.value} export is of the verified results: use --what results")
            rows = _verified_export(session, project, fmt, out, method, include_rejected)
            seconds = time.perf_counter() - started
            if progress is not None:
                progress(rows, rows)
            log.info("export.done", project_id=project_id, what=what.value, format=fmt.value, rows=rows, seconds=round(seconds, 3))
            return ExportSummary(path=out, what=what.value, format=fmt.value, rows=rows, seconds=seconds)
        if fmt == Format.COCO and project.type not in MASK_TYPES:
            raise ExportError(f"COCO export is for mask projects; project {project_id} is {project.type}")
        total = (
            _count_answers(session, project_id)
            if what == What.ANSWERS
            else int(
                session.execute(
                    select(func.count(col(Task.id))).where(col(Task.project_id) == project_id, col(Task.kind) == TaskKind.NORMAL.value)
                ).scalar_one()
            )
        )
        last = [0]

        def tick(n: int) -> None:
            if progress is not None and (n - last[0] >= 10_000 or n >= total):
                last[0] = n
                progress(n, total)

        with _atomic_text(out) as fh:
            if what == What.ANSWERS:
                if fmt == Format.COCO:
                    rows = _coco_answers(session, project, pseudo, reveal_workers, fh, tick)
                else:
                    parts = raw_stream(session, answers_query(session, project_id, reveal=reveal_workers))
                    writer = _answers_csv if fmt == Format.CSV else _answers_jsonl
                    rows = writer(parts, fh, pseudo, reveal_workers, tick)
            elif fmt == Format.COCO:
                rows = _coco_results(session, project, method, fh, tick)
            else:
                results = _aggregate(session, project_id, method)
                rows = (_results_csv if fmt == Format.CSV else _results_jsonl)(results, fh, tick)
        if progress is not None:
            progress(rows, max(rows, total))
    seconds = time.perf_counter() - started
    log.info("export.done", project_id=project_id, what=what.value, format=fmt.value, rows=rows, seconds=round(seconds, 3))
    return ExportSummary(path=out, what=what.value, format=fmt.value, rows=rows, seconds=seconds)


def _verified_export(session: Session, project: Project, fmt: Format, out: Path, method: str, include_rejected: bool) -> int:
    from bot.tasks.formats import export as boxes_out

    assert project.id is not None
    items = boxes_out.verified(session, project, _aggregate(session, project.id, method))
    if fmt == Format.YOLO:
        if project.type != ProjectType.CONFIRM_BOX.value:
            raise ExportError(f"YOLO export is for confirm-box projects; project {project.id} is {project.type}")
        if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "data.yaml").exists())):
            raise ExportError(f"{out}: a YOLO export is a folder; this one exists and holds other files")
        tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            rows = boxes_out.write_yolo(project, items, tmp, include_rejected=include_rejected)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
        return rows
    with _atomic_text(out) as fh:
        if fmt == Format.COCO:
            return boxes_out.write_coco(project, items, fh, include_rejected=include_rejected)
        if fmt == Format.LABEL_STUDIO:
            return boxes_out.write_label_studio(project, items, fh, include_rejected=include_rejected)
        return boxes_out.write_box_rows(project, items, fh, fmt=fmt.value, include_rejected=include_rejected)


__all__ = ["ANSWER_COLUMNS", "ExportError", "ExportSummary", "Format", "Pseudonyms", "What", "export"]
