"""What every admin command needs: the database from the environment and a project by id or name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from admin.progress import err_console
from admin.terminal import term_safe
from bot.config import Settings, get_settings
from bot.db import Database
from bot.tasks import projects, pseudonym_key
from bot.tasks.models import Project


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear error on stderr and stop with ``code`` (nothing half-done is left behind).

    ``message`` is plain text (it often quotes names and file names): it is escaped, never markup.
    """
    err_console.print(f"[bold red]error:[/] {term_safe(message)}", highlight=False, markup=True)
    raise typer.Exit(code)


@contextmanager
def open_db(settings: Settings | None = None) -> Iterator[Database]:
    """The bot's database (DATABASE_URL), migrated to the current schema first."""
    from bot.db.migrate import upgrade

    settings = settings or get_settings()
    upgrade(settings.database.database_url)  # a no-op when the schema is current
    db = Database(settings.database.database_url, pool_size=settings.database.db_pool_size, echo=settings.database.db_echo)
    try:
        yield db
    finally:
        db.dispose()


def pseudonym_secret(db: Database, settings: Settings) -> str:
    """PSEUDONYM_SECRET, or the key this installation generated and stored (first use makes it)."""
    try:
        return pseudonym_key.pseudonym_secret(db, settings.wallet.pseudonym_secret)
    except pseudonym_key.WeakSecret as exc:
        fail(str(exc))


def resolve_project(db: Database, ref: str) -> Project:
    """``ref`` is a project id or its exact name (:func:`bot.tasks.projects.find`)."""
    with db.read_session() as session:
        try:
            project = projects.find(session, ref)
        except projects.ProjectNotFound:
            fail(f"no project with id or name {ref!r} (see: crowdpin admin project list)")
        session.expunge(project)
        return project
