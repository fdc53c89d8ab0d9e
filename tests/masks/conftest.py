"""Fixtures of the mask tests."""

from __future__ import annotations

import pytest

from bot.db import Database


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test on SQLite and on a fresh PostgreSQL database (state CAS, answers, ledger)."""
    return request.getfixturevalue("db" if request.param == "sqlite" else "pg_db")
