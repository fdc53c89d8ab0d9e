"""The first impression: ``crowdpin demo`` (what ``crowdpin run`` without a token starts) shows
the four kinds of task, and its first words are the product's, not a library's logs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.db.migrate import upgrade
from bot.logs import setup_logging


@pytest.mark.timeout(240)
def test_the_demo_runs_classify_confirm_mask_magic_pin_and_boxes_and_starts_with_the_product(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("BOT_TOKEN", "LOG_LEVEL")}
    cmd = [sys.executable, "-m", "bot.cli", "demo", "--workers", "2", "--tasks", "2", "--overlap", "1", "--mask-tasks", "3"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=220, check=False)
    out = done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.startswith("crowdpin demo — sandbox in "), out[:300]
    assert "alembic" not in (out + done.stderr).lower() and " INFO " not in done.stderr, done.stderr[:500]

    # all four sample projects, and every kind of task was shown to the simulated workers
    assert re.search(r"Project #1 “.+” \(classify\): 2 images", out)
    assert re.search(r"Project #2 “.+” \(confirm-mask\): 3 images", out)
    assert re.search(r"Project #3 “.+” \(magic-pin\): 3 images", out)
    assert re.search(r"Project #4 “.+” \(confirm-box\): 3 model boxes", out)
    assert "표시된 영역이 도형과 딱 맞나요?" in out and "도형을 찾아 눌러 주세요." in out

    # Magic Pin: every image outlined by one cell tap and one pick, close to the true outline
    pin = re.search(r"Magic Pin: (\d+) objects outlined .* mean IoU with the true outline (\d\.\d\d)", out)
    assert pin is not None, out[-800:]
    assert int(pin.group(1)) == 3 and float(pin.group(2)) >= 0.85
    verdicts = re.search(r"Is the mask right\? (\d+)/(\d+) verdicts", out)
    assert verdicts is not None and int(verdicts.group(2)) == 3
    answers = [int(n) for n in re.findall(r": (\d+) answers, balance ₩(?:\d+)", out)]
    boxes = re.search(r"A model's boxes: (\d+)/(\d+) verdicts", out)
    assert boxes is not None and int(boxes.group(2)) == 3
    assert sum(answers) == 2 + 3 + 3 + 3


def test_migrations_say_nothing_after_a_later_quieter_setup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``crowdpin run`` without a token sets up INFO logs, then hands over to the demo, which asks
    for WARNING: the second call must win, and Alembic must not narrate its migrations."""
    import logging

    try:
        setup_logging("INFO")
        setup_logging("WARNING")
        assert logging.getLogger().getEffectiveLevel() == logging.WARNING
        upgrade(f"sqlite:///{tmp_path / 'quiet.db'}")
        assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
        # At INFO the bot's own logs show; Alembic's plugin and migration chatter still does not.
        setup_logging("INFO")
        assert logging.getLogger("crowdpin.bot").isEnabledFor(logging.INFO)
        upgrade(f"sqlite:///{tmp_path / 'info.db'}")
        assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
    finally:
        setup_logging("INFO")
