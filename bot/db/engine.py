"""Engines and sessions for SQLite (default) and PostgreSQL.

Domain code is synchronous (easy to test, shared with the admin CLI). The bot runs it off the
event loop through :meth:`Database.run`: on SQLite in one dedicated thread, because SQLite has
one writer anyway and a single thread never meets ``database is locked`` inside the process;
on PostgreSQL in a pool as large as the connection pool.

SQLite write transactions start with ``BEGIN IMMEDIATE`` so two processes (bot and admin CLI)
queue on the write lock instead of failing on a lock upgrade; long reads (exports) use a
second engine with plain deferred transactions so they do not hold the write lock.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from sqlalchemy import event
from sqlalchemy.engine import Connection, CursorResult, Engine, Result, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, create_engine

P = ParamSpec("P")
RETRIES = 3
_RETRY_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def _retryable(exc: DBAPIError) -> bool:
    return exc.connection_invalidated or getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES


T = TypeVar("T")


def normalize_url(url: str) -> str:
    """Map any PostgreSQL spelling to the psycopg 3 driver the sync domain code uses."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False, begin: str = "IMMEDIATE") -> Engine:
    url = normalize_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=NullPool if database in (None, "", ":memory:") else None,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        statement = f"BEGIN {begin}"

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Straight on the sqlite3 connection: SQLAlchemy's driver-SQL path costs more than
            # the BEGIN itself, once per transaction (every tap).
            conn.connection.dbapi_connection.execute(statement)

        return engine
    # No pool_pre_ping: it is a round trip before every transaction. A pooled connection that
    # died (server restart) fails on its first statement instead, and Database.call runs the
    # transaction again on a fresh one ("optimistic" disconnect handling).
    return create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size)


def connection(session: Session) -> Connection:
    """The session's connection in the current transaction, looked up once per transaction.

    ``Session.connection()`` walks the session's transaction state machine on every call, which
    costs more than a short statement on SQLite; the answer loop runs a dozen statements.
    Inside ``begin_nested()`` it is the session's own call, which is what emits the SAVEPOINT.
    """
    if session.in_nested_transaction():
        return session.connection()
    txn = session.get_transaction()
    held = session.info.get("crowdpin.connection")
    if held is not None and held[0] is txn:
        return held[1]
    conn = session.connection()
    session.info["crowdpin.connection"] = (txn, conn)
    return conn


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched: ``Session.execute`` is typed as returning a plain
    ``Result``, but for those statements it is a ``CursorResult`` that knows."""
    return cast("CursorResult[Any]", result).rowcount


@dataclass(slots=True)
class _Grouped:
    """One call waiting for the next group transaction, and where its outcome goes."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    ctx: contextvars.Context
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


class Database:
    """Engine + session factory + the executor that keeps blocking I/O off the event loop."""

    MAX_GROUP = 64

    def __init__(
        self, url: str, *, pool_size: int = 10, echo: bool = False, threads: int | None = None, group_commit: bool | None = None
    ) -> None:
        self.url = normalize_url(url)
        self.sqlite = is_sqlite(self.url)
        self.engine = make_engine(self.url, pool_size=pool_size, echo=echo)
        self.read_engine = make_engine(self.url, echo=echo, begin="DEFERRED") if self.sqlite else self.engine
        workers = 1 if self.sqlite else min(pool_size, threads or pool_size)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crowdpin-db")
        # Group commit on both engines (docs/performance.md): on PostgreSQL a tap is a dozen round
        # trips, each a hand-off between the event loop and a database thread; a group hands
        # over once and commits once. A group holds its row locks until its COMMIT (a few ms);
        # the claims skip locked rows, and a deadlock fails the group, whose calls then run
        # again one by one.
        self.group_commit = True if group_commit is None else group_commit
        self._queue: deque[_Grouped] = deque()
        self._draining = False
        self.groups = 0  # group transactions committed (for tests and metrics)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        with Session(self.read_engine, expire_on_commit=False) as session:
            yield session

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(session, *args)`` in its own transaction, synchronously.

        A transaction that PostgreSQL aborts as a deadlock victim or a serialisation failure, or
        that lost its connection (the server restarted), is run again from the start on a fresh
        connection (domain operations are written to be safely re-run); anything else propagates.
        """
        for attempt in range(RETRIES + 1):
            try:
                with self.session() as session:
                    return fn(session, *args, **kwargs)
            except DBAPIError as exc:
                if attempt == RETRIES or not _retryable(exc):
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(session, *args)`` in a transaction on the DB executor."""
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, self.call, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    async def run_grouped(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like :meth:`run`, but calls that arrive while the DB thread is busy share one
        transaction and one COMMIT (group commit).

        Nothing waits for a group to fill: the first call starts a drain at once, and whatever
        queued behind it while it ran goes in the next group, so an idle bot commits each call
        alone and a busy one commits many at a time. If any call of a group raises, or the
        COMMIT fails, the whole group is rolled back and every call is run again in its own
        transaction (domain operations are written to be safely re-run): each is still done
        exactly once, and one call's failure never loses or fails another.
        """
        if not self.group_commit:
            return await self.run(fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        item = _Grouped(fn, args, kwargs, contextvars.copy_context(), loop.create_future())
        self._queue.append(item)
        if not self._draining:
            self._draining = True
            self._executor.submit(self._drain, loop)
        return cast(T, await item.future)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the DB thread: run queued calls in groups until the queue is empty."""
        while True:
            group: list[_Grouped] = []
            while self._queue and len(group) < self.MAX_GROUP:
                group.append(self._queue.popleft())
            if not group:
                # the event loop only appends; a call appended after this check finds
                # _draining False and starts a new drain
                self._draining = False
                if not self._queue:
                    return
                self._draining = True
                continue
            self._run_group(group)
            loop.call_soon_threadsafe(_deliver, group)

    def _run_group(self, group: list[_Grouped]) -> None:
        if len(group) > 1:
            try:
                with self.session() as session:
                    for item in group:
                        item.result = item.ctx.run(item.fn, session, *item.args, **item.kwargs)
                self.groups += 1
                return
            except BaseException:  # noqa: BLE001 - rolled back; each call runs alone below
                for item in group:
                    item.result = None
        for item in group:
            try:
                item.result = item.ctx.run(self.call, item.fn, *item.args, **item.kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                item.error = exc

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run any blocking callable (no session) on the DB executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def dispose(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


def _deliver(group: list[_Grouped]) -> None:
    """On the event loop: hand each call of a finished group its result or its error."""
    for item in group:
        if item.future.cancelled():
            continue
        if item.error is not None:
            item.future.set_exception(item.error)
        else:
            item.future.set_result(item.result)
