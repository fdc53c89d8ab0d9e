"""The broadcast benchmark end to end at a tiny size: emulator process, sender process killed
half-way and resumed; the last line is the JSON report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_runs_and_reports(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "broadcast.py"),
            "--recipients",
            "40",
            "--blocked-every",
            "10",
            "--workdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["recipients"] == 40
    assert report["http_429"] == 0 and report["duplicates"] == 0 and report["lost"] == 0
    assert report["run"]["blocked"] == 4 and report["run"]["sent"] == 36
    after = report["after_kill"]
    assert after["lost"] == 0 and after["duplicates"] <= 1 and after["http_429"] == 0
    assert report["run_after_kill"]["sent"] == 36 and report["run_after_kill"]["blocked"] == 4
    assert report["rate_per_s"] > 0
