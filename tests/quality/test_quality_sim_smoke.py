"""The quality benchmark runs end to end at a tiny size and ends with its JSON line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_quality_sim_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("quality_sim", ROOT / "benchmarks" / "quality_sim.py")
    assert spec is not None and spec.loader is not None
    sim = importlib.util.module_from_spec(spec)
    sys.modules["quality_sim"] = sim  # dataclasses look their module up there
    try:
        spec.loader.exec_module(sim)
    finally:
        sys.modules.pop("quality_sim", None)
    assert sim.main(["--tasks", "12", "--workers", "10", "--golden", "30", "--seeds", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("seed 1 dynamic")
    result = json.loads(lines[-1])
    assert set(result["accuracy"]) == {"majority_vote", "weighted_vote", "dawid_skene"}
    assert all(0.0 <= v <= 1.0 for v in result["accuracy"].values())
    assert 0.0 <= result["spammers_blocked"] <= 1.0 and 0.0 <= result["honest_blocked"] <= 1.0
    per_task = result["answers_per_task"]
    assert 2.0 <= per_task["dynamic"] <= 7.0  # min overlap 2 .. max 7
    assert 0.0 < per_task["fixed5"] <= 5.0
    assert result["config"]["tasks"] == 12
