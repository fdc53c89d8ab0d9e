"""Peak memory of ``crowdpin admin load`` for a large CSV manifest (issue 18, item 7).

    python benchmarks/load_memory.py [--rows 300000] [--workdir DIR]

Makes ``--rows`` distinct 64x48 JPEG files (16 base pictures, each file given a unique JPEG
comment so every content hash differs) and a CSV manifest naming each once, then loads it into
a fresh SQLite database in a child process, in reference mode (no copies), through
``bot.tasks.datasets.load``. The child reports its own peak RSS (``getrusage``), its RSS after
imports (the baseline) and the load's wall and CPU time.

Prints progress, then ONE JSON object on the last line: ``rows``, ``peak_rss_mb``,
``baseline_rss_mb``, ``load_mb`` (peak minus baseline), ``bytes_per_row``, ``seconds``,
``cpu_us_per_row``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_dataset(folder: Path, rows: int) -> Path:
    from bot.sample import SHAPES, make_image

    rng = random.Random(7)
    bases = []
    for i in range(16):
        img, _ = make_image(rng, SHAPES[i % len(SHAPES)], (64, 48))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        bases.append(buf.getvalue())
    manifest = folder / "manifest.csv"
    folder.mkdir(parents=True, exist_ok=True)
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "external_id", "prelabel"])
        for i in range(rows):
            name = f"{i // 1000:03d}/img_{i:06d}.jpg"
            if i % 1000 == 0:
                (folder / name).parent.mkdir(exist_ok=True)
            comment = f"crowdpin load-memory {i}".encode()
            data = bases[i % 16]
            (folder / name).write_bytes(data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:])
            writer.writerow([name, f"row-{i:06d}", ("cat", "dog", "bird")[i % 3]])
    return manifest


def child(url: str, manifest: str) -> None:
    from bot.db import Database
    from bot.db.migrate import upgrade
    from bot.logs import setup_logging
    from bot.tasks import datasets, projects

    setup_logging("WARNING")
    upgrade(url)
    db = Database(url)
    with db.session() as session:
        project_id = projects.create(session, name="bench", labels=["cat", "dog", "bird"]).id
    baseline = rss_mb()
    started = time.perf_counter()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    summary = datasets.load(db, project_id, Path(manifest), media_dir=None, copy=False, threads=2)  # type: ignore[arg-type]
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - started
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    peak = usage1.ru_maxrss / 1024  # KiB on Linux
    assert summary.created == summary.rows and not summary.bad, summary
    print(json.dumps({"rows": summary.created, "peak_rss_mb": peak, "baseline_rss_mb": baseline, "seconds": wall, "cpu": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", nargs=2, metavar=("URL", "MANIFEST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crowdpin-load-memory-"))
    t0 = time.perf_counter()
    manifest = make_dataset(workdir / "ds", args.rows)
    print(f"made {args.rows} images and the manifest in {time.perf_counter() - t0:.0f}s", flush=True)
    db = workdir / "load.db"
    db.unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", f"sqlite:///{db}", str(manifest)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    load_mb = got["peak_rss_mb"] - got["baseline_rss_mb"]
    print(f"loaded {got['rows']} rows in {got['seconds']:.0f}s; peak RSS {got['peak_rss_mb']:.0f} MB ({load_mb:.0f} MB over the baseline)")
    print(
        json.dumps(
            {
                "rows": got["rows"],
                "peak_rss_mb": round(got["peak_rss_mb"], 1),
                "baseline_rss_mb": round(got["baseline_rss_mb"], 1),
                "load_mb": round(load_mb, 1),
                "bytes_per_row": round(load_mb * 2**20 / max(1, got["rows"])),
                "seconds": round(got["seconds"], 1),
                "cpu_us_per_row": round(1e6 * got["cpu"] / max(1, got["rows"]), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
