"""Alembic is the only way the schema changes: the migrations must produce exactly the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from bot.db.migrate import current_heads, upgrade
from bot.db.schema import metadata


def _diff(url: str) -> list:
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    return diff


def test_single_head() -> None:
    assert len(current_heads()) == 1, current_heads()


def test_sqlite_schema_matches_models(sqlite_url: str) -> None:
    assert _diff(sqlite_url) == []


def test_postgres_schema_matches_models(pg_url: str) -> None:
    assert _diff(pg_url.replace("postgresql+psycopg", "postgresql+psycopg")) == []
