"""Exports: exact rows in CSV / JSONL / COCO, pseudonyms, aggregated results, flat memory."""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from sqlalchemy import insert, select

from bot.autoseg import rle
from bot.db import Database
from bot.tasks import datasets, export
from bot.tasks.aggregate import aggregate_project
from bot.tasks.models import Answer, Assignment, Task
from bot.workers.models import Worker
from tests.admin.conftest import Cli
from tests.admin.helpers import answer_all, classify_project, coco_file, jpeg, mask_project, samples

# pycocotools 2.0 calls numpy with an old keyword; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SECRET = "test-secret"


def _pseudonym(worker_id: int, secret: str = SECRET) -> str:
    return "w_" + hmac.new(secret.encode(), f"worker:{worker_id}".encode(), hashlib.sha256).hexdigest()[:16]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _classify_with_answers(db: Database, tmp_path: Path) -> int:
    project = classify_project(db, overlap=2, price=7)
    folder = tmp_path / "imgs"
    for i in range(6):
        jpeg(folder / f"{i}.jpg", seed=i)
    datasets.load(db, project.id, folder, media_dir=None, copy=False)  # type: ignore[arg-type]
    answer_all(db, 3, lambda card, wid: "cat" if (card.task_id + wid) % 3 else "dog", seconds=2.5)
    return project.id  # type: ignore[return-value]


def _expected_answers(db: Database, project_id: int) -> list[dict]:
    with db.read_session() as s:
        rows = s.execute(
            select(Answer, Task.external_id, Assignment.leased_at, Worker)
            .join(Task, Task.id == Answer.task_id)
            .join(Assignment, Assignment.id == Answer.assignment_id)
            .join(Worker, Worker.id == Answer.worker_id)
            .where(Answer.project_id == project_id)
            .order_by(Answer.id)
        ).all()
    return [
        {
            "answer_id": a.id,
            "task_id": a.task_id,
            "external_id": ext,
            "worker": _pseudonym(a.worker_id),
            "answer": a.value,
            "mask_rle": a.mask_rle,
            "seconds": a.seconds,
            "leased_at": _iso(leased),
            "answered_at": _iso(a.created_at),
            "status": a.status,
            "is_golden": a.is_golden,
            "correct": a.correct,
            "reward": a.reward,
            "worker_id": w.id,
            "worker_tg_id": w.tg_id,
            "worker_name": w.name,
        }
        for a, ext, leased, w in rows
    ]


def test_answers_jsonl_and_csv_are_exact(cli: Cli, db: Database, tmp_path: Path) -> None:
    pid = _classify_with_answers(db, tmp_path)
    expected = _expected_answers(db, pid)
    assert len(expected) == 12
    cli("export", str(pid), "--what", "answers", "--format", "jsonl", "--out", str(tmp_path / "a.jsonl"))
    got = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    hidden = ("worker_id", "worker_tg_id", "worker_name")
    assert got == [{k: v for k, v in row.items() if k not in hidden} for row in expected]
    text = (tmp_path / "a.jsonl").read_text()
    assert "worker0" not in text and '"worker_id"' not in text  # no identity leaks by default
    cli("export", str(pid), "--what", "answers", "--format", "csv", "--out", str(tmp_path / "a.csv"), "--reveal-workers")
    with (tmp_path / "a.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [*export.ANSWER_COLUMNS, "worker_id", "worker_tg_id", "worker_name"]

    def as_csv(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    assert rows == [{k: as_csv(v) for k, v in row.items()} for row in expected]


def test_answers_and_coco_exports_on_both_engines(any_db: Database, tmp_path: Path) -> None:
    pid = _classify_with_answers(any_db, tmp_path)
    export.export(any_db, pid, what="answers", fmt="jsonl", out=tmp_path / "a.jsonl", secret=SECRET, reveal_workers=True)
    got = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert got == _expected_answers(any_db, pid)
    project = mask_project(any_db, overlap=1)
    shapes = samples(tmp_path / "coco" / "images", count=2)
    path, _ = coco_file(tmp_path / "coco", shapes)
    assert datasets.load(any_db, project.id, path, media_dir=tmp_path / "media").created == 2  # type: ignore[arg-type]
    answer_all(any_db, 1, lambda card, wid: "yes", tg_base=9000)
    export.export(any_db, project.id, what="results", fmt="coco", out=tmp_path / "c.json", secret=SECRET)  # type: ignore[arg-type]
    coco = COCO(str(tmp_path / "c.json"))
    with any_db.read_session() as s:
        masks = dict(s.execute(select(Task.id, Task.mask_rle).where(Task.project_id == project.id)).all())
    assert sorted(coco.anns) == sorted(masks)
    for ann in coco.anns.values():
        assert np.array_equal(coco.annToMask(ann).astype(bool), rle.decode(json.loads(masks[ann["id"]])))


def test_pseudonyms_are_stable_and_keyed(db: Database, tmp_path: Path) -> None:
    pid = _classify_with_answers(db, tmp_path)
    outs = []
    for i, secret in enumerate((SECRET, SECRET, "another")):
        path = tmp_path / f"{i}.jsonl"
        export.export(db, pid, what="answers", fmt="jsonl", out=path, secret=secret)
        outs.append([json.loads(line)["worker"] for line in path.read_text().splitlines()])
    assert outs[0] == outs[1]
    assert set(outs[0]).isdisjoint(outs[2])
    with db.read_session() as s:
        worker_ids = set(s.execute(select(Answer.worker_id)).scalars())
    assert set(outs[0]) == {_pseudonym(w) for w in worker_ids} and len(worker_ids) == 2


def test_results_come_from_the_aggregator(cli: Cli, db: Database, tmp_path: Path) -> None:
    pid = _classify_with_answers(db, tmp_path)
    with db.read_session() as s:
        expected = list(aggregate_project(s, pid, "majority_vote"))
    cli("export", str(pid), "--what", "results", "--format", "jsonl", "--out", str(tmp_path / "r.jsonl"), "--method", "majority_vote")
    got = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["external_id"], r["label"], r["confidence"], r["n_answers"], r["method"]) for r in got] == [
        (e.task_id, e.external_id, e.label, e.confidence, e.n_answers, e.method) for e in expected
    ]
    cli("export", str(pid), "--what", "results", "--format", "csv", "--out", str(tmp_path / "r.csv"), "--method", "majority_vote")
    with (tmp_path / "r.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["task_id"]), r["label"], int(r["n_answers"])) for r in rows] == [(e.task_id, e.label, e.n_answers) for e in expected]
    bad = cli("export", str(pid), "--what", "results", "--format", "csv", "--out", str(tmp_path / "x.csv"), "--method", "nope", ok=False)
    assert bad.exit_code == 1 and "unknown aggregation method" in bad.stderr
    assert not (tmp_path / "x.csv").exists()  # no half file


def test_coco_is_refused_for_classify_and_nothing_is_written(cli: Cli, db: Database, tmp_path: Path) -> None:
    pid = _classify_with_answers(db, tmp_path)
    result = cli("export", str(pid), "--format", "coco", "--out", str(tmp_path / "c.json"), ok=False)
    assert result.exit_code == 1 and "COCO export is for mask projects" in result.stderr
    assert not (tmp_path / "c.json").exists()


def test_coco_results_and_answers_read_back_by_pycocotools(db: Database, tmp_path: Path) -> None:
    project = mask_project(db, overlap=2)
    folder = tmp_path / "coco"
    shapes = samples(folder / "images", count=5)
    path, _data = coco_file(folder, shapes, rle_every=2)
    datasets.load(db, project.id, path, media_dir=None, copy=False)  # type: ignore[arg-type]
    with db.read_session() as s:
        tasks = {t.id: t for t in s.execute(select(Task).where(Task.project_id == project.id)).scalars()}
    rejected = min(tasks)  # both workers say the first mask is wrong
    answer_all(db, 2, lambda card, wid: "no" if card.task_id == rejected else "yes")
    out = tmp_path / "results.json"
    summary = export.export(db, project.id, what="results", fmt="coco", out=out, secret=SECRET)  # type: ignore[arg-type]
    assert summary.rows == 4
    coco = COCO(str(out))
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} >= {s.shape for s in shapes}
    anns = coco.loadAnns(coco.getAnnIds())
    assert sorted(a["id"] for a in anns) == sorted(set(tasks) - {rejected})
    for ann in anns:
        task = tasks[ann["id"]]
        assert np.array_equal(coco.annToMask(ann).astype(bool), rle.decode(json.loads(task.mask_rle)))  # type: ignore[arg-type]
        assert coco.imgs[ann["image_id"]]["file_name"] == task.external_id.split("#")[0]
        assert coco.cats[ann["category_id"]]["name"] == task.prelabel
        assert ann["area"] == int(rle.decode(json.loads(task.mask_rle)).sum())  # type: ignore[arg-type]
    answers_out = tmp_path / "answers.json"
    n = export.export(db, project.id, what="answers", fmt="coco", out=answers_out, secret=SECRET).rows  # type: ignore[arg-type]
    assert n == 8  # two "yes" answers on each of the four confirmed masks
    per_answer = COCO(str(answers_out))
    for ann in per_answer.loadAnns(per_answer.getAnnIds()):
        assert ann["answer"] == "yes" and ann["worker"].startswith("w_")
        assert np.array_equal(per_answer.annToMask(ann).astype(bool), rle.decode(json.loads(tasks[ann["task_id"]].mask_rle)))  # type: ignore[arg-type]


def _bulk_answers(db: Database, project_id: int, n_tasks: int, n_workers: int, tag: str = "a", tg_base: int = 10) -> int:
    """``n_tasks * n_workers`` answers inserted in bulk (the domain loop is too slow for this)."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    with db.session() as s:
        image_id = s.execute(select(Task.image_id).where(Task.project_id == project_id)).scalars().first()
        s.execute(
            insert(Task),
            [
                {
                    "project_id": project_id,
                    "image_id": image_id,
                    "external_id": f"bulk-{tag}-{i}",
                    "kind": "normal",
                    "status": "open",
                    "taken": 0,
                    "answers_count": 0,
                    "created_at": now,
                }
                for i in range(n_tasks)
            ],
        )
        s.execute(
            insert(Worker),
            [
                {"tg_id": tg_base + i, "name": f"b{i}", "lang": "ko", "status": "active", "created_at": now, "last_active_at": now}
                for i in range(n_workers)
            ],
        )
        task_ids = list(s.execute(select(Task.id).where(Task.external_id.like(f"bulk-{tag}-%"))).scalars())
        worker_ids = list(s.execute(select(Worker.id).where(Worker.tg_id >= tg_base, Worker.tg_id < tg_base + n_workers)).scalars())
        pairs = [(t, w) for t in task_ids for w in worker_ids]
        s.execute(
            insert(Assignment),
            [
                {
                    "task_id": t,
                    "worker_id": w,
                    "project_id": project_id,
                    "status": "answered",
                    "leased_at": now,
                    "expires_at": now + timedelta(minutes=10),
                }
                for t, w in pairs
            ],
        )
        ids = {
            (t, w): a
            for a, t, w in s.execute(
                select(Assignment.id, Assignment.task_id, Assignment.worker_id).where(Assignment.task_id.in_(task_ids))
            )
        }
        s.execute(
            insert(Answer),
            [
                {
                    "assignment_id": ids[(t, w)],
                    "task_id": t,
                    "worker_id": w,
                    "project_id": project_id,
                    "reward": 10,
                    "value": "cat",
                    "seconds": 1.5,
                    "is_golden": False,
                    "status": "accepted",
                    "created_at": now,
                }
                for t, w in pairs
            ],
        )
    return len(pairs)


def _export_peak(db: Database, project_id: int, out: Path, fmt: str) -> tuple[int, int]:
    tracemalloc.start()
    try:
        summary = export.export(db, project_id, what="answers", fmt=fmt, out=out, secret=SECRET)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return summary.rows, peak


def test_export_memory_does_not_grow_with_rows(db: Database, tmp_path: Path) -> None:
    project = classify_project(db)
    jpeg(tmp_path / "imgs" / "a.jpg")
    datasets.load(db, project.id, tmp_path / "imgs", media_dir=None, copy=False)  # type: ignore[arg-type]
    pid: int = project.id  # type: ignore[assignment]
    _bulk_answers(db, pid, 100, 100, tag="a", tg_base=10)
    small = {}
    for fmt in ("jsonl", "csv"):
        _export_peak(db, pid, tmp_path / f"warm.{fmt}", fmt)  # warm-up: first-use imports and statement caches
        small[fmt] = _export_peak(db, pid, tmp_path / f"small.{fmt}", fmt)
    _bulk_answers(db, pid, 200, 100, tag="b", tg_base=10_000)
    for fmt in ("jsonl", "csv"):
        rows_small, peak_small = small[fmt]
        rows_big, peak_big = _export_peak(db, pid, tmp_path / f"big.{fmt}", fmt)
        assert (rows_small, rows_big) == (10_000, 30_000)
        # Three times the rows, (about) the same peak: nothing is held per row.
        assert peak_big < peak_small * 1.25 + 256 * 1024, (fmt, peak_small, peak_big)
        assert peak_big < 12 * 2**20, (fmt, peak_big)  # a few fetch chunks, not the rows


def test_results_method_defaults_to_the_aggregation_setting(
    cli: Cli, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import get_settings

    pid = _classify_with_answers(db, tmp_path)
    monkeypatch.setenv("AGGREGATION", "crowdkit:MajorityVote")
    get_settings.cache_clear()
    cli("export", str(pid), "--what", "results", "--format", "jsonl", "--out", str(tmp_path / "ck.jsonl"))
    got = [json.loads(line) for line in (tmp_path / "ck.jsonl").read_text().splitlines()]
    assert got and {r["method"] for r in got} == {"crowdkit:MajorityVote"}
    cli("export", str(pid), "--what", "results", "--format", "jsonl", "--out", str(tmp_path / "mv.jsonl"), "--method", "majority_vote")
    mv = [json.loads(line) for line in (tmp_path / "mv.jsonl").read_text().splitlines()]
    assert [r["label"] for r in mv] == [r["label"] for r in got]
    monkeypatch.setenv("AGGREGATION", "crowdkit:Nope")
    get_settings.cache_clear()
    bad = cli("export", str(pid), "--what", "results", "--format", "csv", "--out", str(tmp_path / "x.csv"), ok=False)
    assert bad.exit_code == 1 and "no classification aggregator 'Nope'" in bad.stderr
    assert not (tmp_path / "x.csv").exists()
