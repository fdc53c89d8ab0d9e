"""A minimal pipelined Redis connection for the two scripts every update runs (see ``gate``).

redis-py spends a few hundred microseconds of Python per command (connection pool, retry
wrapper, argument deprecation checks, response callbacks); on the hot path of several replicas
that was most of the gate's cost. This connection writes each command as it comes and one
reader task matches replies to callers in order, so any number of updates share one socket
without a pool. It speaks RESP2, handles ``NOSCRIPT`` (a restarted Redis) by sending the script
body, and reconnects and resends once on a broken connection; the gate's scripts are written
to be safe to resend. Everything else (FSM storage, broadcast pace) stays on redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from typing import Any
from urllib.parse import unquote, urlparse

import structlog

log = structlog.get_logger("crowdpin.redis")


class ReplyError(Exception):
    """An error reply from Redis (``-ERR ...``)."""


def _encode(args: tuple[Any, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class WireScripts:
    """Runs Lua scripts on one pipelined connection to the Redis at ``url``."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme {parsed.scheme!r} (redis:// or rediss://)")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379
        self.db = int(parsed.path.lstrip("/") or 0)
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.tls = parsed.scheme == "rediss"
        self.connect_timeout = connect_timeout
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._connecting: asyncio.Lock | None = None

    # --- connection ---------------------------------------------------------------------------

    async def _connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return
            context = ssl.create_default_context() if self.tls else None
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port, ssl=context), self.connect_timeout)
            self._pending = deque()
            self._writer = writer
            self._reader_task = asyncio.ensure_future(self._read_replies(reader, writer))
            if self.password is not None:
                auth = ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
                await self._send(auth)
            if self.db:
                await self._send(("SELECT", self.db))

    async def _read_replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pending = self._pending
        try:
            while True:
                try:
                    reply: Any = await self._parse(reader)
                except ReplyError as exc:
                    reply = exc
                if not pending:
                    raise ConnectionError("Redis sent a reply nobody asked for")
                future = pending.popleft()
                if not future.done():
                    if isinstance(reply, ReplyError):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            error = exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc) or "Redis connection lost")
            while pending:
                future = pending.popleft()
                if not future.done():
                    future.set_exception(error)
            writer.close()
            if self._writer is writer:
                self._writer = None

    async def _parse(self, reader: asyncio.StreamReader) -> Any:
        line = await reader.readuntil(b"\r\n")
        kind, body = line[:1], line[1:-2]
        if kind == b":":
            return int(body)
        if kind == b"+":
            return body.decode()
        if kind == b"-":
            raise ReplyError(body.decode(errors="replace"))
        if kind == b"$":
            size = int(body)
            if size < 0:
                return None
            return (await reader.readexactly(size + 2))[:-2]
        if kind == b"*":
            size = int(body)
            if size < 0:
                return None
            items = []
            for _ in range(size):
                try:
                    items.append(await self._parse(reader))
                except ReplyError as exc:
                    items.append(exc)
            return items
        raise ConnectionError(f"unexpected Redis reply {line[:20]!r}")

    async def _send(self, args: tuple[Any, ...]) -> Any:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise ConnectionError("not connected")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(future)  # appended and written with no await between: replies match in order
        writer.write(_encode(args))
        return await future

    async def call(self, *args: Any) -> Any:
        """Send one command; on a broken connection reconnect and send it once more."""
        for attempt in (1, 2):
            try:
                if self._writer is None or self._writer.is_closing():
                    await self._connect()
                return await self._send(args)
            except (TimeoutError, ConnectionError, OSError):
                if attempt == 2:
                    raise
                log.warning("redis.reconnect", host=self.host, port=self.port)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            self._reader_task = None

    # --- scripts ------------------------------------------------------------------------------

    async def run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self.call("EVAL", script.body, len(keys), *keys, *args)


class Script:
    def __init__(self, body: str) -> None:
        self.body = body
        self.sha = hashlib.sha1(body.encode()).hexdigest()
