"""The tap benchmark runs and ends with its JSON line (tiny size; the real run is by hand)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from bot import autoseg

TINY = ["--count", "1", "--runs", "1", "--original-side", "640", "--phone-side", "320"]


def _benchmark() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "magic_pin_tap.py"
    spec = importlib.util.spec_from_file_location("magic_pin_tap", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_magic_pin_tap_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    result = _benchmark().main(TINY)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == result
    assert result["images"] == 1 and result["tap_median_ms"] > 0 and result["mean_iou"] > 0.8
    assert result["candidates_median"] >= 1 and result["mean_best_iou"] >= result["mean_iou"]


def test_magic_pin_tap_benchmark_times_three_candidates() -> None:
    try:
        result = _benchmark().main([*TINY, "--backend", "tests.masks.candidate_backend:Rings"])
    finally:
        autoseg.configure(None)
    assert result["candidates_median"] == 3 and result["mean_best_iou"] >= result["mean_iou"] > 0
