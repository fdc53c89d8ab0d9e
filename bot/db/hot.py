"""The answer loop's statements, executed on the DBAPI cursor (psycopg or sqlite3) directly.

Every tap runs about a dozen short statements. SQLAlchemy's execution path (an execution
context, a new DBAPI cursor, a ``cursor.description`` of Python ``Column`` objects, a result
object) costs about as much CPU as the statement itself: on psycopg 100-120 us per statement
against 45-60 us for the cursor alone; on sqlite3 about 25 us of Python around a few
microseconds of SQLite. With a tap's dozen statements that was a large part of what the bot
added to aiogram's own cost per answer (docs/performance.md).

So statements marked :func:`hot` (module-level constants, built once) run once per driver and
parameter shape through SQLAlchemy; from then on the SQL that run compiled goes straight to
the connection's DBAPI cursor, with the parameters through the same type processors
(SQLModel's UTC datetimes) and, for sqlite3's qmark style, in the compiled order, in the same
transaction. A statement that needs more of SQLAlchemy (Python-side defaults, expanding
parameters) stays on ``Connection.execute``, as does every statement while ``DB_ECHO`` asks
for each one in the log. Driver errors come out as SQLAlchemy's ``DBAPIError`` (with
``connection_invalidated`` set on a lost connection), so :meth:`bot.db.Database.call` retries
deadlocks and reconnects as before.

On PostgreSQL a write whose result nobody reads can also *ride* on the next statement of the
same transaction, as data-modifying CTEs (:class:`Carried`, ``execute(..., carry=...)``): one
round trip less per write, which is what a tap costs on the database thread. Sub-statements of
one statement share its snapshot, so only writes that no later part of it reads are carried
(a tap's task settlement and ledger posting ride on the worker's counters update).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound, StatementError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.selectable import CTE
from sqlmodel import Session

from bot.db.engine import connection

S = TypeVar("S", bound=Executable)


@dataclass(slots=True)
class _Plan:
    sql: str
    compiled: Any  # sqlalchemy SQLCompiler: construct_params fills in the statement's own literals
    returns_rows: bool
    keys: tuple[str, ...]
    binds: dict[str, Callable[[Any], Any]]  # SQLAlchemy's bind processors by parameter name
    positions: tuple[str, ...] | None  # qmark drivers (sqlite3): parameter names in order
    results: list[Callable[[Any], Any] | None] | None  # its result processors by column, if any

    def values(self, params: Mapping[str, Any]) -> Any:
        values = self.compiled.construct_params(params)
        for name, process in self.binds.items():
            if name in values:
                values[name] = process(values[name])
        if self.positions is not None:
            return [values[name] for name in self.positions]
        return values

    def rows(self, fetched: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if self.results is None:
            return fetched
        procs = self.results
        return [tuple(v if p is None else p(v) for p, v in zip(procs, row)) for row in fetched]


class _Hot:
    """A marked statement and its plans, by parameter names; None: not for the lane."""

    __slots__ = ("plans", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self.plans: dict[tuple[str, ...], _Plan | None] = {}  # by (driver, *parameter names)


_HOT: dict[int, _Hot] = {}  # by id(statement); the entry holds the statement, so the id stays its own


def hot(statement: S) -> S:
    """Mark a statement built once at import for the lane; returns it unchanged."""
    _HOT.setdefault(id(statement), _Hot(statement))
    return statement


class Rows:
    """The part of SQLAlchemy's ``Result`` the domain code uses, over rows already fetched."""

    __slots__ = ("_keys", "_rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], keys: tuple[str, ...], rowcount: int) -> None:
        self._rows = rows
        self._keys = keys
        self.rowcount = rowcount

    def all(self) -> list[tuple[Any, ...]]:
        return self._rows

    def first(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def one(self) -> tuple[Any, ...]:
        if len(self._rows) != 1:
            raise _no_or_many(len(self._rows))
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def mappings(self) -> Rows:
        return Rows([dict(zip(self._keys, row)) for row in self._rows], self._keys, self.rowcount)  # type: ignore[misc]


def _no_or_many(count: int) -> Exception:
    return (
        NoResultFound("No row was found when one was required")
        if count == 0
        else MultipleResultsFound("Multiple rows were found when exactly one was required")
    )


@dataclass(frozen=True, slots=True)
class Carried:
    """A write whose result nobody reads: its data-modifying CTEs (PostgreSQL; built once, like
    every lane statement), the same write as a statement of its own, and its parameters.

    No parameter of the combined statement may be named like a column of a table a carried CTE
    writes: SQLAlchemy would take it as one more value of that INSERT or UPDATE (``s_*``,
    ``p_*`` and ``b_*`` prefixes keep them apart), so :func:`execute` refuses it."""

    ctes: tuple[CTE, ...]
    alone: Executable
    params: Mapping[str, Any] = field(default_factory=dict)


_RIDING: dict[tuple[int, ...], tuple[Any, frozenset[str]]] = {}  # by (statement, its CTEs): built once, with the names it forbids


def execute(
    session: Session,
    statement: Executable,
    params: Mapping[str, Any] | list[Mapping[str, Any]] | None = None,
    *,
    carry: list[Carried] | None = None,
) -> Any:
    """``connection(session).execute(statement, params)``, on the DBAPI cursor when it may.

    ``carry``: writes that go first; on PostgreSQL inside this statement, as its CTEs (one
    round trip for all), elsewhere each on its own. The list is emptied: they are sent."""
    if carry:
        statement, params = _riding(session, statement, params, carry)
    conn = connection(session)
    entry = _HOT.get(id(statement))
    if entry is None or entry.statement is not statement or conn.dialect.driver not in _LANE_DRIVERS or conn.engine.echo:
        return conn.execute(statement, params)  # DB_ECHO logs every statement: only SQLAlchemy's path does
    many = isinstance(params, list)
    args: Any = params  # one mapping, or a list of them (many): checked just below
    if not (many and args and isinstance(args[0], Mapping)) and not isinstance(args, Mapping):
        return conn.execute(statement, args)
    key = (conn.dialect.driver, *sorted(args[0] if many else args))  # one process may hold both engines
    plan = entry.plans.get(key, _MISSING)
    if plan is _MISSING:
        result = conn.execute(statement, args)  # the first run is SQLAlchemy's: it names the columns
        entry.plans[key] = None if many and result.returns_rows else _plan(statement, conn.dialect, result)
        return result
    if plan is None:
        return conn.execute(statement, args)
    if many:
        return _run_many(conn, plan, args)
    return _run(conn, plan, args)


def send(session: Session, carry: list[Carried]) -> None:
    """Carried writes that found no statement to ride on, each as a statement of its own."""
    while carry:
        item = carry.pop(0)
        execute(session, item.alone, dict(item.params))


def _riding(session: Session, statement: Executable, params: Any, carry: list[Carried]) -> tuple[Executable, Any]:
    if connection(session).dialect.name != "postgresql" or not isinstance(params, Mapping) or not hasattr(statement, "add_cte"):
        send(session, carry)
        return statement, params
    key = (id(statement), *(id(cte) for item in carry for cte in item.ctes))
    found = _RIDING.get(key)
    if found is None:
        ctes = [cte for item in carry for cte in item.ctes]
        written = frozenset(name for cte in ctes if (table := getattr(cte.element, "table", None)) is not None for name in table.c.keys())
        found = _RIDING[key] = (hot(statement.add_cte(*ctes)), written)
    combined, written = found
    merged = dict(params)
    for item in carry:
        for name, value in item.params.items():
            if name in merged and merged[name] != value:
                raise ValueError(f"a carried write's parameter {name!r} clashes with the statement's")
            merged[name] = value
    taken = written.intersection(merged)
    if taken:
        raise ValueError(f"parameters {sorted(taken)} are named like columns a carried write sets: rename them")
    carry.clear()
    return combined, merged


_MISSING: Any = object()
_LANE_DRIVERS = frozenset({"psycopg", "pysqlite"})


def _plan(statement: Executable, dialect: Dialect, result: Any) -> _Plan | None:
    """How the lane runs this statement with these parameter names; None: leave it to SQLAlchemy.

    ``result`` is SQLAlchemy's result of the first run: it holds the compiled statement that run
    executed (so the lane sends exactly that SQL), and its cursor tells the database types of
    the columns, which pick the same result processors SQLAlchemy applies.
    """
    compiled: Any = result.context.compiled
    positions = None
    if dialect.paramstyle == "qmark":
        if compiled.positiontup is None:
            return None
        positions = tuple(compiled.positiontup)
    elif dialect.paramstyle != "pyformat":
        return None
    if compiled.insert_prefetch or compiled.update_prefetch or compiled.literal_execute_params or compiled.post_compile_params:
        return None
    binds: dict[str, Callable[[Any], Any]] = {}
    for name, bind in compiled.binds.items():
        if bind.expanding or bind.callable is not None:
            return None
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds[name] = process
    keys: tuple[str, ...] = ()
    results: list[Callable[[Any], Any] | None] = []
    if result is not None and result.returns_rows:
        keys = tuple(result.keys())
        columns = getattr(statement, "selected_columns", None)
        if columns is None:
            columns = getattr(statement, "exported_columns", None)
        description = result.cursor.description if result.cursor is not None else None
        if columns is None or description is None or len(columns) != len(keys) or len(description) != len(keys):
            return None
        results = [column.type.dialect_impl(dialect).result_processor(dialect, d[1]) for column, d in zip(columns, description)]
    return _Plan(
        sql=compiled.string,
        compiled=compiled,
        returns_rows=bool(keys),
        keys=keys,
        binds=binds,
        positions=positions,
        results=results if any(results) else None,
    )


def _cursor(conn: Connection) -> Any:
    """One DBAPI cursor per connection, reused (creating one costs as much as a statement)."""
    raw = conn.connection.dbapi_connection
    held = conn.info.get("crowdpin.cursor")
    if held is None or held[0] is not raw:
        held = conn.info["crowdpin.cursor"] = (raw, raw.cursor())  # type: ignore[union-attr]
    return held[1]


def _run(conn: Connection, plan: _Plan, params: Mapping[str, Any]) -> Rows:
    values = plan.values(params)
    cursor = _cursor(conn)
    try:
        cursor.execute(plan.sql, values)
        rows = plan.rows(cursor.fetchall()) if plan.returns_rows else []
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _translated(conn, cursor, plan, values, exc) from exc
    return Rows(rows, plan.keys, cursor.rowcount)


def _run_many(conn: Connection, plan: _Plan, params: list[Mapping[str, Any]]) -> Rows:
    """Several rows of one INSERT (psycopg pipelines them, one round trip for all)."""
    values = [plan.values(p) for p in params]
    cursor = _cursor(conn)
    try:
        cursor.executemany(plan.sql, values)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _translated(conn, cursor, plan, values, exc) from exc
    return Rows([], (), cursor.rowcount)


def _translated(conn: Connection, cursor: Any, plan: _Plan, values: Any, exc: Any) -> StatementError:
    """The driver's error as SQLAlchemy raises it, the connection invalidated when it is lost."""
    invalidated = bool(conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor))
    if invalidated:
        conn.invalidate(exc)
    return DBAPIError.instance(
        plan.sql, values, exc, conn.dialect.loaded_dbapi.Error, connection_invalidated=invalidated, dialect=conn.dialect
    )
