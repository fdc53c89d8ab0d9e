"""The wallet benchmark runs end to end at a tiny size and reports every figure."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "wallet_ledger.py"


def test_benchmark_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("wallet_ledger_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = module.main(["--entries", "300", "--ops", "8", "--repeat", "1"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == summary
    for name in ("earn", "balance_screen", "withdraw_cycle", "reverse"):
        assert summary[f"{name}_ms"] > 0 and summary[f"{name}_cpu_ms"] >= 0
    assert summary["backend"] == "sqlite" and summary["entries"] == 300
