"""Issue 18, item 7, "stream it": a large manifest is loaded chunk by chunk, never held whole.

Before, ``datasets.load`` read every row, checked every image and prepared every row before
writing the first: memory grew by about 3 KB a row (0.9 GB for 300,000 rows). These tests make
the chunks tiny (``CHUNK_ROWS``) and check that the loader reads at most one chunk ahead of
what it has written, that its memory no longer scales with the rows, and that everything the
whole-file loader did still holds across chunk boundaries: all-or-nothing, ``--skip-bad``,
duplicates, the sample, the progress bars, a killed load's leftovers.
"""

from __future__ import annotations

import csv
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.tasks import datasets
from bot.tasks.datasets import LoadRejected, Selection
from bot.tasks.models import Task
from tests.admin.helpers import classify_project, jpeg

CHUNK = 5


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    # raising=False: the whole-file loader had no chunks, and must fail the tests below, not this line
    monkeypatch.setattr(datasets, "CHUNK_ROWS", CHUNK, raising=False)
    return CHUNK


def _manifest(folder: Path, n: int, *, start: int = 0, extra: dict[int, dict[str, str]] | None = None) -> Path:
    """``n`` rows, one distinct image each; ``extra[i]`` overrides fields of row ``i`` (0-based)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "external_id", "prelabel"])
        writer.writeheader()
        for i in range(n):
            name = f"img_{start + i:04d}.jpg"
            if not (folder / name).exists():
                jpeg(folder / name, seed=start + i)
            row = {"image": name, "external_id": f"row-{start + i:04d}", "prelabel": ("cat", "dog")[i % 2]}
            row.update((extra or {}).get(i, {}))
            writer.writerow(row)
    return path


def _line(i: int) -> int:
    """The CSV line of row ``i`` (0-based; line 1 is the header)."""
    return i + 2


def _statuses(db: Database, project_id: int) -> dict[str, int]:
    with db.read_session() as s:
        query = select(Task.status, func.count()).where(Task.project_id == project_id).group_by(Task.status)
        return dict(s.execute(query).all())  # type: ignore[arg-type]


def _external_ids(db: Database, project_id: int) -> set[str]:
    with db.read_session() as s:
        return set(s.execute(select(Task.external_id).where(Task.project_id == project_id)).scalars())


def test_the_loader_reads_at_most_one_chunk_ahead_of_what_it_wrote(
    db: Database, tmp_path: Path, small_chunks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = classify_project(db)
    assert project.id is not None
    manifest = _manifest(tmp_path / "ds", 23)
    passes: list[int] = []  # rows handed out by each pass over the manifest
    real_reader, real_write_one = datasets.iter_csv, datasets._write_one
    ahead: list[int] = []

    def counting_reader(*args: Any, **kwargs: Any) -> Iterator[Any]:
        passes.append(0)
        for item in real_reader(*args, **kwargs):
            passes[-1] += 1
            yield item

    written = 0

    def watching_write(*args: Any, **kwargs: Any) -> Any:
        nonlocal written
        ahead.append(passes[-1] - written)  # rows read but not yet written, when a batch is written
        result = real_write_one(*args, **kwargs)
        written += len(args[2])
        return result

    monkeypatch.setattr(datasets, "iter_csv", counting_reader)
    monkeypatch.setattr(datasets, "_write_one", watching_write)
    summary = datasets.load(db, project.id, manifest, copy=False)
    assert summary.created == 23 and not summary.bad
    assert passes == [23, 23]  # a counting pass (totals, sample), then the load
    assert len(ahead) == 5 and max(ahead) <= small_chunks  # one batch per chunk, never more than a chunk ahead
    assert _statuses(db, project.id) == {"open": 23}


def _peak_bytes(db: Database, project_id: int, manifest: Path) -> int:
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    summary = datasets.load(db, project_id, manifest, copy=False, threads=1, limits=datasets.Limits(max_bytes=1 << 16))
    assert not summary.bad
    return tracemalloc.get_traced_memory()[1] - before


def test_peak_memory_does_not_grow_with_the_rows(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four times the rows: the whole-file loader's peak grew about 4x; the streamed one's only by
    the duplicate index and the task ids (a few hundred bytes a row) over one chunk's worth."""
    monkeypatch.setattr(datasets, "CHUNK_ROWS", 100, raising=False)
    small, large = _manifest(tmp_path / "small", 200), _manifest(tmp_path / "large", 800, start=1000)
    warm = classify_project(db, name="warm-up")
    one, four = classify_project(db, name="one"), classify_project(db, name="four")
    assert warm.id is not None and one.id is not None and four.id is not None
    tracemalloc.start()
    try:
        _peak_bytes(db, warm.id, _manifest(tmp_path / "warm", 20, start=5000))  # statement caches, pools
        peak_one = _peak_bytes(db, one.id, small)
        peak_four = _peak_bytes(db, four.id, large)
    finally:
        tracemalloc.stop()
    assert peak_four < 2 * peak_one, (peak_one, peak_four)


def test_a_bad_row_in_the_last_chunk_refuses_the_load_and_leaves_nothing(
    db: Database, tmp_path: Path, small_chunks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = classify_project(db)
    assert project.id is not None
    manifest = _manifest(tmp_path / "ds", 23, extra={22: {"image": "gone.jpg"}})
    batches = 0
    real_write_one = datasets._write_one

    def counting_write(*args: Any, **kwargs: Any) -> Any:
        nonlocal batches
        batches += 1
        return real_write_one(*args, **kwargs)

    monkeypatch.setattr(datasets, "_write_one", counting_write)
    with pytest.raises(LoadRejected) as caught:
        datasets.load(db, project.id, manifest, copy=False)
    assert [(p.row, "gone.jpg" in p.problem) for p in caught.value.problems] == [(_line(22), True)]
    assert batches == 4  # the four good chunks before it were written (invisibly)...
    assert _statuses(db, project.id) == {}  # ...and are gone: not visible, not even 'loading'


def test_every_bad_row_of_every_chunk_is_named(db: Database, tmp_path: Path, small_chunks: int) -> None:
    """All-or-nothing stops writing at the first bad row but reads on, to name them all."""
    project = classify_project(db)
    assert project.id is not None
    bad = {1: {"prelabel": "horse"}, 12: {"image": "gone.jpg"}, 21: {"prelabel": "cow"}}
    manifest = _manifest(tmp_path / "ds", 23, extra=bad)
    with pytest.raises(LoadRejected) as caught:
        datasets.load(db, project.id, manifest, copy=False)
    assert [p.row for p in caught.value.problems] == [_line(i) for i in sorted(bad)]
    assert _statuses(db, project.id) == {}


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_skip_bad_loads_the_good_rows_of_every_chunk(db: Database, tmp_path: Path, small_chunks: int, suffix: str) -> None:
    project = classify_project(db)
    assert project.id is not None
    bad = {2: {"image": "gone.jpg"}, 21: {"prelabel": "horse"}}
    manifest = _manifest(tmp_path / "ds", 23, extra=bad)
    if suffix == "jsonl":
        with manifest.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        manifest = manifest.with_suffix(".jsonl")
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
        line = {i: i + 1 for i in bad}
    else:
        line = {i: _line(i) for i in bad}
    summary = datasets.load(db, project.id, manifest, copy=False, skip_bad=True)
    assert (summary.rows, summary.created) == (23, 21)
    assert [p.row for p in summary.bad] == [line[2], line[21]]
    assert _statuses(db, project.id) == {"open": 21}
    assert _external_ids(db, project.id) == {f"row-{i:04d}" for i in range(23)} - {"row-0002", "row-0021"}


def test_duplicates_are_found_across_chunk_boundaries(db: Database, tmp_path: Path, small_chunks: int) -> None:
    project = classify_project(db)
    assert project.id is not None
    folder = tmp_path / "ds"
    _manifest(folder, 12)
    jpeg(folder / "other.jpg", seed=999)
    extra = {
        12: {"image": "other.jpg", "external_id": "row-0002"},  # chunk 3 reuses chunk 1's id with another image: bad
        13: {"image": "img_0004.jpg", "external_id": "row-0004", "prelabel": "cat"},  # row 4 again, exactly: a duplicate
        14: {"image": "img_0005.jpg", "external_id": "copy-of-5", "prelabel": "dog"},  # row 5's content, another name
    }
    manifest = _manifest(folder, 15, extra=extra)
    with pytest.raises(LoadRejected) as caught:
        datasets.load(db, project.id, manifest, copy=False)
    (problem,) = caught.value.problems
    assert problem.row == _line(12) and f"already used by manifest.csv row {_line(2)}" in problem.problem
    summary = datasets.load(db, project.id, manifest, copy=False, skip_bad=True)
    assert (summary.created, summary.duplicates, len(summary.bad)) == (12, 2, 1)
    again = datasets.load(db, project.id, manifest, copy=False, skip_bad=True)  # against the project, chunk by chunk
    assert (again.created, again.already_loaded, again.duplicates) == (0, 12, 2)
    assert _statuses(db, project.id) == {"open": 12}


def test_the_streamed_sample_is_the_sample_of_the_whole_list(db: Database, tmp_path: Path, small_chunks: int) -> None:
    project = classify_project(db)
    assert project.id is not None
    manifest = _manifest(tmp_path / "ds", 23)
    selection = Selection(sample=7, seed=3)
    rows, _, _ = datasets.read_source(manifest)
    expected, _, _ = selection.apply(rows)
    summary = datasets.load(db, project.id, manifest, copy=False, selection=selection)
    assert (summary.created, summary.left_out) == (7, 16)
    assert _external_ids(db, project.id) == {r.external_id for r in expected}


def test_progress_bars_run_once_over_all_chunks(db: Database, tmp_path: Path, small_chunks: int) -> None:
    project = classify_project(db)
    assert project.id is not None
    calls: list[tuple[str, int, int]] = []
    datasets.load(db, project.id, _manifest(tmp_path / "ds", 23), copy=False, progress=lambda *a: calls.append(a))
    for stage in ("check", "write"):
        done = [d for s, d, _ in calls if s == stage]
        assert done == sorted(done), stage  # never goes back
        last = [c for c in calls if c[0] == stage][-1]
        assert last == (stage, 23, 23)
        assert all(d <= t for s, d, t in calls if s == stage)


def test_an_error_half_way_leaves_nothing(db: Database, tmp_path: Path, small_chunks: int, monkeypatch: pytest.MonkeyPatch) -> None:
    project = classify_project(db)
    assert project.id is not None
    real_write_one = datasets._write_one
    batches = 0

    def failing_write(*args: Any, **kwargs: Any) -> Any:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise OSError("disk full")
        return real_write_one(*args, **kwargs)

    monkeypatch.setattr(datasets, "_write_one", failing_write)
    with pytest.raises(OSError, match="disk full"):
        datasets.load(db, project.id, _manifest(tmp_path / "ds", 23), copy=False)
    assert _statuses(db, project.id) == {}


def test_a_killed_loads_leftovers_are_published_only_by_a_load_that_names_them(db: Database, tmp_path: Path) -> None:
    """A killed streamed load may have been refused further on: its rows must not go live with
    the next load of another source. Rerunning the killed load takes them over and finishes it."""
    project = classify_project(db)
    assert project.id is not None
    killed = _manifest(tmp_path / "killed", 6)
    rows, _, _ = datasets.read_source(killed)
    with db.read_session() as s:
        planned, _, _ = datasets.plan(s, project, rows)
    datasets.write(db, project.id, planned, media_dir=None, copy=False)  # written, never finished: a SIGKILL
    assert _statuses(db, project.id) == {"loading": 6}
    other = datasets.load(db, project.id, _manifest(tmp_path / "other", 4, start=100), copy=False)
    assert (other.created, other.resumed) == (4, 0)
    assert _statuses(db, project.id) == {"open": 4, "loading": 6}
    rerun = datasets.load(db, project.id, killed, copy=False)
    assert (rerun.created, rerun.already_loaded, rerun.resumed) == (0, 6, 6)
    assert _statuses(db, project.id) == {"open": 10}
