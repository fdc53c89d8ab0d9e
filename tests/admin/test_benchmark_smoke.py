"""The admin I/O benchmark runs end to end at a tiny size and ends with its JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "admin_io.py"


def test_admin_io_benchmark_smoke(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARK), "--images", "24", "--answers", "500", "--runs", "1", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["images"] == 24 and result["answers"] == 500
    assert result["load_images_per_s"] > 0 and result["export_rows_per_s"] > 0
    assert 0 < result["export_peak_rss_mb"] < 1000
    assert set(result["export_cpu_us_per_row"]) == {"jsonl", "csv"}
