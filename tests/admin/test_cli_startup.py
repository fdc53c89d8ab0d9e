"""``crowdpin --help`` lists every command without importing the domain: the operators'
commands (SQLAlchemy, numpy...) load only for ``crowdpin admin ...``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
import bot.cli
sys.argv = ["crowdpin", *sys.argv[1:]]
try:
    bot.cli.main()
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("sqlalchemy", "numpy", "sqlmodel", "admin.cli", "cv2") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _run(*args: str) -> tuple[str, dict[str, Any]]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    *text, last = out.stdout.strip().splitlines()
    return "\n".join(text), json.loads(last)


def test_help_is_light_and_complete() -> None:
    text, probe = _run("--help")
    assert probe == {"code": 0, "heavy": []}
    for command in ("run", "demo", "emulator", "db", "admin"):
        assert f" {command} " in text


def test_admin_loads_when_asked() -> None:
    text, probe = _run("admin", "--help")
    assert probe["code"] == 0 and "admin.cli" in probe["heavy"]
    for command in ("export", "stats", "load", "reject-worker"):
        assert command in text
    _text, probe = _run("admin", "export", "--help")
    assert probe["code"] == 0 and "--method" in _text
