"""benchmarks/miniapp.py runs end to end at the smallest size and ends with its JSON line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_miniapp_benchmark_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("miniapp_bench", BENCHMARKS / "miniapp.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        # no dev sets: one generated shape in the browser, no taps-to-0.85 part
        result = module.main(
            ["--autoseg-dev", str(tmp_path / "none"), "--latency-images", "1", "--noc-limit", "0", "--screenshots", str(tmp_path)]
        )
    finally:
        sys.path.remove(str(BENCHMARKS))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == result
    assert result["taps"] == 2 and 0 < result["p50_ms"] <= result["p95_ms"]
    assert (tmp_path / "miniapp-benchmark.png").exists()
