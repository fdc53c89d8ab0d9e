"""Every setting is read through ``bot.config.Settings``, so a ``.env`` file works for all of them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import autoseg
from bot.app import make_app
from bot.autoseg.classical import ClassicalSegmenter
from bot.config import AutosegSettings, Settings, get_settings
from bot.db import Database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory (for .env) and no crowdpin variables in the environment."""
    for name in ("AUTOSEG_BACKEND", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    autoseg.configure(None)
    autoseg.set_segmenter(None)
    yield tmp_path
    get_settings.cache_clear()
    autoseg.configure(None)
    autoseg.set_segmenter(None)


def test_no_module_reads_the_environment_itself() -> None:
    offenders = []
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("admin/**/*.py")]:
        if path.name == "config.py" and path.parent.name == "bot":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"os\.environ|os\.getenv|getenv\(", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"read settings through bot.config.Settings instead: {offenders}"


def test_autoseg_backend_comes_from_dotenv(clean_env: Path) -> None:
    (clean_env / ".env").write_text("AUTOSEG_BACKEND=onnx:/models/sam.onnx\n")
    assert Settings().autoseg.backend == "onnx:/models/sam.onnx"
    with pytest.raises(RuntimeError, match=r"AUTOSEG_BACKEND='onnx:/models/sam.onnx'"):
        autoseg.get_segmenter()
    (clean_env / ".env").write_text("AUTOSEG_BACKEND=classical\n")
    get_settings.cache_clear()
    assert isinstance(autoseg.get_segmenter(), ClassicalSegmenter)


def test_the_bot_configures_autoseg_from_its_own_settings(clean_env: Path, db: Database) -> None:
    settings = Settings(autoseg=AutosegSettings(AUTOSEG_BACKEND="onnx:/m.onnx"))
    settings.media.media_dir = clean_env / "media"
    make_app(settings, db)
    with pytest.raises(RuntimeError, match=r"onnx:/m\.onnx"):
        autoseg.get_segmenter()
    autoseg.configure("classical")
    assert isinstance(autoseg.get_segmenter(), ClassicalSegmenter)


def test_log_level_counts_as_given_from_dotenv_too(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not Settings().log_level_given
    (clean_env / ".env").write_text("LOG_LEVEL=DEBUG\n")
    assert Settings().log_level_given and Settings().log_level == "DEBUG"
    (clean_env / ".env").unlink()
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    assert Settings().log_level_given
