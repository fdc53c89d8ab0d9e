"""The tap benchmark runs and ends with its JSON line (tiny size; the real run is by hand)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest


def test_magic_pin_tap_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "magic_pin_tap.py"
    spec = importlib.util.spec_from_file_location("magic_pin_tap", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--count", "1", "--runs", "1", "--original-side", "640", "--phone-side", "320"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == result
    assert result["images"] == 1 and result["tap_median_ms"] > 0 and result["mean_iou"] > 0.8
