"""Starting the emulator as a program and on a background thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from bot.emulator.runner import DEFAULT_TEST_TOKEN, start_background

REPO_ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_python_m_bot_emulator_prints_url_and_token_and_serves() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.emulator", "--port", "0"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(5)]
        base_url = lines[0].rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert lines[1].strip() == f"test bot token: {DEFAULT_TEST_TOKEN}"
        assert lines[3].strip() == f"TELEGRAM_API_BASE={base_url} BOT_TOKEN={DEFAULT_TEST_TOKEN} crowdpin run"
        me = _get(f"{base_url}/bot{DEFAULT_TEST_TOKEN}/getMe")
        assert me["ok"] and me["result"]["username"] == "crowdpin_bot"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_background_emulator_for_synchronous_code() -> None:
    with start_background(port=0) as background:
        user = background.run(lambda emu: emu.create_user(first_name="Sync"))
        background.run(lambda emu: emu.send_text(user.id, "/start"))
        updates = _get(f"{background.base_url}/bot{background.token}/getUpdates")["result"]
        assert updates[0]["message"]["from"]["id"] == user.id
