"""The validation-round benchmark runs end to end at a tiny size and ends with its JSON line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_validation_round_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("validation_round", ROOT / "benchmarks" / "validation_round.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["validation_round"] = bench  # dataclasses look their module up there
    try:
        spec.loader.exec_module(bench)
        assert bench.main(["--boxes", "60", "--workers", "8", "--seeds", "1"]) == 0
    finally:
        sys.modules.pop("validation_round", None)
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["benchmark"] == "validation_round" and last["boxes"] == 60
    assert 0.5 <= last["verdict_accuracy"] <= 1.0 and 1.0 <= last["answers_per_box"] <= 4.0
    assert last["cost_per_box_krw"] >= 10 * last["answers_per_box"] * 0.99  # every normal answer paid at least
    for key in ("load_boxes_per_s", "export_boxes_per_s"):
        assert last[key]["coco"] > 0 and last[key]["yolo"] > 0
