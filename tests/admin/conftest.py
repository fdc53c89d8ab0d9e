"""Admin CLI fixtures: the CLI runs against the test's own SQLite database and media folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.config import get_settings
from bot.db import Database


class Cli:
    def __init__(self, runner: CliRunner) -> None:
        self.runner = runner

    def __call__(self, *args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        from admin.cli import app

        result = self.runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        return result


@pytest.fixture
def admin_env(db: Database, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """DATABASE_URL / MEDIA_DIR for the CLI; yields the media folder."""
    media = tmp_path / "media"
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MEDIA_DIR", str(media))
    monkeypatch.setenv("PSEUDONYM_SECRET", "test-secret")
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield media
    get_settings.cache_clear()


@pytest.fixture
def cli(admin_env: Path) -> Cli:
    return Cli(CliRunner())


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on SQLite and on a fresh PostgreSQL database."""
    return request.getfixturevalue("db" if request.param == "sqlite" else "pg_db")
