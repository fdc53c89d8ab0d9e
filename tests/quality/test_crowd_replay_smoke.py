"""The crowd replay benchmark runs a tiny crowd through the real bot over the emulator, with
and without churn, and ends with its JSON line (the real sets are in ../shared; not needed here)."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports its _harness as the scripts do
    spec = importlib.util.spec_from_file_location("crowd_replay", ROOT / "benchmarks" / "crowd_replay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["crowd_replay"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop("crowd_replay", None)
    return module


def _tiny(folder: Path) -> Path:
    """8 tasks, 4 workers who label every task: three careful, one who always says "no"."""
    folder.mkdir()
    rng = random.Random(3)
    truth = {f"q{i}": rng.choice(["yes", "no"]) for i in range(8)}
    (folder / "tiny_gold.csv").write_text("task,label\n" + "".join(f"{t},{v}\n" for t, v in truth.items()))
    rows = [f"{t},w{w},{'no' if w == 3 else v}\n" for t, v in truth.items() for w in range(4)]
    (folder / "tiny_answers.csv").write_text("task,worker,label\n" + "".join(rows))
    return folder


def test_crowd_replay_smoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    replay = _load()
    data = _tiny(tmp_path / "crowd")
    assert replay.main(["--data", str(data), "--set", "tiny", "--time-scale", "0.25"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])["sets"]["tiny"]
    assert figures["tasks"] == 8 and figures["workers"] == 4 and figures["source_answers"] == 32
    assert figures["answers_lost"] == 0.0  # every source answer to a normal task was taken
    assert figures["accuracy"] == 1.0 and figures["ds_all"] == 1.0
    assert figures["honest_blocked"] == 0.0
    assert figures["completion_s"] > 0 and figures["completion_s_churn"] > 0
    assert any(line.startswith("tiny churn:") for line in lines)


def test_crowd_replay_refuses_a_missing_set(tmp_path: Path) -> None:
    replay = _load()
    with pytest.raises(SystemExit) as stopped:
        replay.main(["--data", str(tmp_path), "--set", "nope"])
    assert stopped.value.code == 2
