"""Admin I/O benchmark: load generated images into a project, export a million answers.

    python benchmarks/admin_io.py [--images 10000] [--answers 1000000] [--runs 3]

* Load: ``--images`` 640x480 JPEGs through ``bot.tasks.datasets.load`` (the code behind
  ``crowdpin admin load``) in its default copy mode, into a fresh SQLite database per run:
  every image decoded, hashed, copied into the media folder, one task each.
  The files are made fast from 16 distinct photos-like pictures, each file given a unique JPEG
  comment segment: different bytes (so different content hashes: nothing is deduplicated) and
  the same decoding work as distinct pictures of that size.
* Export: ``--answers`` answers bulk-inserted (with their assignments and workers) into the
  loaded database, then exported to JSONL and to CSV by ``bot.tasks.export`` in a child process,
  which reports its own peak RSS (``getrusage``) so the parent's memory does not count.

Prints progress, then ONE JSON object on the last line: medians over ``--runs`` of
``load_images_per_s``, ``export_rows_per_s`` (the slower of the two formats), and the highest
``export_peak_rss_mb``, plus CPU time per operation.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BASES = 16
SIZE = (640, 480)


def log(message: str) -> None:
    print(message, flush=True)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- data


def make_images(folder: Path, count: int) -> None:
    """``count`` distinct 640x480 JPEG files, written in seconds."""
    from bot.sample import SHAPES, make_image

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(42)
    bases = []
    for i in range(BASES):
        img, _ = make_image(rng, SHAPES[i % len(SHAPES)], SIZE)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        bases.append(buf.getvalue())
    for i in range(count):
        data = bases[i % BASES]
        comment = f"crowdpin benchmark image {i}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        sub = folder / f"{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(exist_ok=True)
        (sub / f"img_{i:06d}.jpg").write_bytes(data[:2] + segment + data[2:])


def insert_answers(db_path: Path, project_id: int, n_answers: int) -> int:
    """Workers, assignments and answers generated inside SQLite (a recursive CTE), in one
    transaction: a million rows in seconds, with every index maintained as in real use."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    first, last, n_tasks = conn.execute("SELECT min(id), max(id), count(*) FROM task WHERE project_id = ?", (project_id,)).fetchone()
    assert last - first + 1 == n_tasks, "benchmark tasks are expected to have consecutive ids"
    n_workers = -(-n_answers // n_tasks)
    stamp = "2025-01-01 00:00:00.000000"
    series = f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {int(n_answers)}) "
    task = f"({first} + (x - 1) % {n_tasks})"
    worker = f"(100000 + (x - 1) / {n_tasks})"
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO worker (id, tg_id, name, lang, status, created_at, last_active_at) VALUES (?, ?, ?, 'ko', 'active', ?, ?)",
        ((100_000 + w, 5_000_000 + w, f"worker {w}", stamp, stamp) for w in range(n_workers)),
    )
    conn.execute(
        series + "INSERT INTO assignment (id, task_id, worker_id, project_id, status, leased_at, expires_at, closed_at) "
        f"SELECT x, {task}, {worker}, {project_id}, 'answered', printf('2025-01-01 %02d:%02d:00.000000', x % 24, x % 60), "
        f"'2025-01-02 00:00:00.000000', '{stamp}' FROM n"
    )
    conn.execute(
        series
        + "INSERT INTO answer (id, assignment_id, task_id, worker_id, project_id, reward, value, seconds, is_golden, status, created_at) "
        f"SELECT x, x, {task}, {worker}, {project_id}, 10, CASE x % 3 WHEN 0 THEN 'cat' WHEN 1 THEN 'dog' ELSE 'bird' END, "
        f"1.0 + (x % 97) / 10.0, 0, 'accepted', printf('2025-01-01 %02d:%02d:07.%06d', x % 24, x % 60, x % 1000000) FROM n"
    )
    conn.execute("COMMIT")
    total = conn.execute("SELECT count(*) FROM answer WHERE project_id = ?", (project_id,)).fetchone()[0]
    conn.close()
    return int(total)


# --------------------------------------------------------------------------- measurements


def run_load(workdir: Path, images: Path, run: int) -> dict[str, float]:
    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.tasks import datasets, projects

    db_path = workdir / f"load{run}.db"
    media = workdir / f"media{run}"
    url = f"sqlite:///{db_path}"
    upgrade(url)
    db = Database(url)
    with db.session() as session:
        project_id = projects.create(session, name="bench", labels=["cat", "dog", "bird"]).id
    started, cpu0 = time.perf_counter(), cpu_seconds()
    summary = datasets.load(db, project_id, images, media_dir=media, copy=True)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu0
    db.dispose()
    shutil.rmtree(media, ignore_errors=True)  # a copy of every image: do not keep N copies on disk
    assert summary.created == summary.rows and not summary.bad, summary
    return {"images": summary.created, "seconds": wall, "cpu_seconds": cpu, "db": str(db_path)}


def child_export(url: str, project_id: int, fmt: str, out: str) -> None:
    """Runs in a fresh interpreter: the export alone, then its own peak RSS."""
    from bot.db import Database
    from bot.tasks import export

    db = Database(url)
    started, cpu0 = time.perf_counter(), cpu_seconds()
    summary = export.export(db, project_id, what="answers", fmt=fmt, out=Path(out), secret="bench")
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu0
    db.dispose()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"rows": summary.rows, "seconds": wall, "cpu_seconds": cpu, "peak_rss_mb": peak_kb / 1024}))


def run_export(url: str, project_id: int, fmt: str, out: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child-export", url, str(project_id), fmt, str(out)],
        check=True,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "LOG_LEVEL": "WARNING"},
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temporary one, removed after).")
    parser.add_argument("--child-export", nargs=4, metavar=("URL", "PROJECT", "FORMAT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_export:
        url, project_id, fmt, out = args.child_export
        child_export(url, int(project_id), fmt, out)
        return

    from bot.logs import setup_logging

    setup_logging("WARNING")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crowdpin-admin-io-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        images = workdir / "images"
        t0 = time.perf_counter()
        make_images(images, args.images)
        log(f"generated {args.images} images of {SIZE[0]}x{SIZE[1]} in {time.perf_counter() - t0:.1f}s")

        loads = []
        for run in range(args.runs):
            result = run_load(workdir, images, run)
            loads.append(result)
            log(
                f"load run {run + 1}/{args.runs}: {result['images'] / result['seconds']:.0f} images/s "
                f"({result['seconds']:.1f}s wall, {1000 * result['cpu_seconds'] / result['images']:.2f} ms CPU per image)"
            )
        db_path = Path(loads[-1]["db"])  # type: ignore[arg-type]
        for run in range(args.runs - 1):
            Path(loads[run]["db"]).unlink(missing_ok=True)  # type: ignore[arg-type]

        t0 = time.perf_counter()
        total = insert_answers(db_path, 1, args.answers)
        log(f"inserted {total} answers in {time.perf_counter() - t0:.1f}s")
        url = f"sqlite:///{db_path}"
        exports: dict[str, list[dict[str, float]]] = {"jsonl": [], "csv": []}
        for run in range(args.runs):
            for fmt in exports:
                out = workdir / f"answers.{fmt}"
                result = run_export(url, 1, fmt, out)
                assert result["rows"] == total, result
                exports[fmt].append(result)
                log(
                    f"export {fmt} run {run + 1}/{args.runs}: {result['rows'] / result['seconds']:,.0f} rows/s, "
                    f"peak RSS {result['peak_rss_mb']:.0f} MB, {out.stat().st_size / 1e6:.0f} MB written"
                )
                out.unlink()

        load_rates = [r["images"] / r["seconds"] for r in loads]
        rates = {fmt: statistics.median(r["rows"] / r["seconds"] for r in runs) for fmt, runs in exports.items()}
        summary = {
            "load_images_per_s": round(statistics.median(load_rates), 1),
            "export_rows_per_s": round(min(rates.values())),
            "export_peak_rss_mb": round(max(r["peak_rss_mb"] for runs in exports.values() for r in runs), 1),
            "export_rows_per_s_jsonl": round(rates["jsonl"]),
            "export_rows_per_s_csv": round(rates["csv"]),
            "load_cpu_ms_per_image": round(statistics.median(1000 * r["cpu_seconds"] / r["images"] for r in loads), 3),
            "export_cpu_us_per_row": {
                fmt: round(statistics.median(1e6 * r["cpu_seconds"] / r["rows"] for r in runs), 2) for fmt, runs in exports.items()
            },
            "images": args.images,
            "answers": total,
            "runs": args.runs,
            "cores": __import__("os").cpu_count(),
        }
        print(json.dumps(summary), flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
