"""Shared fixtures: a migrated SQLite database per test, a real PostgreSQL database per test
when asked for, and the in-process sandbox (emulator + bot) for end-to-end tests.

PostgreSQL and Redis tests never skip silently: when the server is unreachable they fail
with the reason (``.ci/run`` starts both before the tests).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot import clock
from bot.db import Database
from bot.db.migrate import upgrade
from bot.logs import setup_logging

setup_logging("INFO")  # plain tracebacks: rich ones with locals take seconds per error

PG_URL = os.environ.get("CROWDPIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CROWDPIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def db(sqlite_url: str) -> Iterator[Database]:
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    yield database
    database.dispose()


def _admin_url() -> str:
    return make_url(PG_URL).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test, dropped afterwards."""
    admin = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"crowdpin_t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 # pragma: no cover - environment problem, reported loudly
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable ({exc}); .ci/run starts it", pytrace=False)
    url = make_url(_admin_url()).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url, pool_size=8)
    yield database
    database.dispose()


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as exc:  # noqa: BLE001 # pragma: no cover - environment problem, reported loudly
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc}); .ci/run starts it", pytrace=False)
    return REDIS_URL


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[object]:
    from bot.sandbox import Sandbox

    box = await Sandbox.start(tmp_path)
    try:
        yield box
    finally:
        await box.close()
