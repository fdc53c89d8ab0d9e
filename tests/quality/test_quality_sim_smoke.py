"""The quality benchmark runs end to end at a tiny size and ends with its JSON line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality_sim", ROOT / "benchmarks" / "quality_sim.py")
    assert spec is not None and spec.loader is not None
    sim = importlib.util.module_from_spec(spec)
    sys.modules["quality_sim"] = sim  # dataclasses look their module up there
    try:
        spec.loader.exec_module(sim)
    finally:
        sys.modules.pop("quality_sim", None)
    return sim


def test_quality_sim_smoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sim = _load()
    crowd = _tiny_crowd(tmp_path / "crowds")
    assert sim.main(["--tasks", "12", "--workers", "10", "--golden", "30", "--seeds", "1", "--crowd-dev", str(crowd)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("seed 1 dynamic")
    result = json.loads(lines[-1])
    assert set(result["accuracy"]) == {"majority_vote", "weighted_vote", "dawid_skene"}
    assert all(0.0 <= v <= 1.0 for v in result["accuracy"].values())
    assert 0.0 <= result["spammers_blocked"] <= 1.0 and 0.0 <= result["honest_blocked"] <= 1.0
    per_task = result["answers_per_task"]
    assert 2.0 <= per_task["dynamic"] <= 7.0  # min overlap 2 .. max 7
    assert 0.0 < per_task["fixed5"] <= 5.0 and 0.0 < per_task["fixed3"] <= 3.0
    assert result["config"]["tasks"] == 12
    for mode in ("dynamic", "fixed5", "fixed3"):
        assert set(result["ece"][mode]) == {"majority_vote", "weighted_vote", "dawid_skene", "auto"}
        assert 0.0 <= result["ece_default"][mode] <= 1.0
    assert "default_ece_le_0.05" in result["targets"]
    out = "\n".join(lines)
    assert "confidence bin" in out and "real tiny overlap   3" in out
    tiny = result["real_crowds"]["tiny"]
    assert set(tiny) == {"3", "5", "all"}
    # the tiny crowd: 4 careful workers and 1 who always says "no"; every method gets most right
    assert all(v >= 0.8 for v in tiny["all"]["accuracy"].values())


def _tiny_crowd(folder: Path) -> Path:
    """A real-crowd folder in the crowd-dev layout: 60 tasks, 5 workers, labels yes/no."""
    import random

    folder.mkdir()
    rng = random.Random(0)
    truth = {f"q{i}": rng.choice(["yes", "no"]) for i in range(60)}
    (folder / "tiny_gold.csv").write_text("task,label\n" + "".join(f"{t},{v}\n" for t, v in truth.items()))
    rows = []
    for t, v in truth.items():
        for w in range(5):
            value = "no" if w == 4 else (v if rng.random() < 0.9 else ("no" if v == "yes" else "yes"))
            rows.append(f"{t},w{w},{value}\n")
    (folder / "tiny_answers.csv").write_text("task,worker,label\n" + "".join(rows))
    (folder / "README.md").write_text("not a crowd")
    return folder


def test_calibration_ablation_smoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("calibration_ablation", ROOT / "benchmarks" / "calibration_ablation.py")
    assert spec is not None and spec.loader is not None
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    assert ablation.main(["--seeds", "1", "--crowd-dev", str(_tiny_crowd(tmp_path / "crowds"))]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ablation"]
    assert set(result) == {"simulated", "tiny/3", "tiny/5", "tiny/all"}
    for figures in result.values():
        assert set(figures) == set(ablation.VARIANTS)
        assert all(0.0 <= f["ece"] <= 1.0 and 0.5 <= f["accuracy"] <= 1.0 for f in figures.values())
    # the simulated crowd (spammers kept in): the default is better calibrated than crowd-kit's DS
    assert result["simulated"]["prior+temperature"]["ece"] < result["simulated"]["ml"]["ece"]
