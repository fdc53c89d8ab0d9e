"""Core tables of SQLModel classes, typed (SQLModel does not declare ``__table__`` for type
checkers); for prebuilt statements and bulk inserts that work on columns directly."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy import inspect as sa_inspect
from sqlmodel import SQLModel


def table(model: type[SQLModel]) -> Table:
    """The table ``model`` maps (``model.__table__``)."""
    found = sa_inspect(model).local_table
    assert isinstance(found, Table), f"{model.__name__} is not a table model"
    return found
