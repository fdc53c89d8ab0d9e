"""Core tables of SQLModel classes, typed (SQLModel does not declare ``__table__`` for type
checkers); for prebuilt statements and bulk inserts that work on columns directly."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, bindparam, cast
from sqlalchemy import inspect as sa_inspect
from sqlmodel import SQLModel


def table(model: type[SQLModel]) -> Table:
    """The table ``model`` maps (``model.__table__``)."""
    found = sa_inspect(model).local_table
    assert isinstance(found, Table), f"{model.__name__} is not a table model"
    return found


def bound_row(model: type[SQLModel], names: Iterable[str], prefix: str) -> list[Any]:
    """One typed bind parameter per column ``names`` of ``model``, named ``prefix + name``: the
    values of an ``INSERT ... SELECT`` fed by a data-modifying CTE (one round trip instead of
    two). The prefix matters: SQLAlchemy reads a parameter named like a column of an UPDATE in
    the same statement as one more SET value of that UPDATE."""
    columns = table(model).c
    return [cast(bindparam(f"{prefix}{name}"), columns[name].type) for name in names]
