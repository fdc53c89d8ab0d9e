"""Outer middlewares: drop re-delivered updates, and resolve the sending worker.

Resolving the worker is the only per-update database work outside a handler; it is cached per
process for a short time because a tap on a label should cost one transaction, not two.
Status changes that matter (bans) are enforced again inside the domain operations.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User

from bot import workers
from bot.cache import LRUCache, TTLCache
from bot.telegram.runtime import App

log = structlog.get_logger("crowdpin.bot")


@dataclass(slots=True)
class WorkerCtx:
    """The worker who sent the update, as handlers see it (``worker``)."""

    id: int
    tg_id: int
    name: str
    lang: str
    status: str
    is_new: bool = False


class SeenUpdates:
    """Recently handled update ids, to make Telegram's re-deliveries no-ops in one process."""

    def __init__(self, capacity: int = 50_000) -> None:
        self._seen: LRUCache[tuple[int, int], None] = LRUCache(capacity)

    async def first_time(self, bot_id: int, update_id: int) -> bool:
        key = (bot_id, update_id)
        if key in self._seen:  # membership does not refresh an entry: the oldest ids go first
            return False
        self._seen[key] = None
        return True


class DedupMiddleware(BaseMiddleware):
    """Outer middleware on the Update observer: a repeated update_id is dropped."""

    def __init__(self, seen: Any) -> None:
        self.seen = seen

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        bot = data["bot"]
        if not await self.seen.first_time(bot.id, event.update_id):
            log.info("update.duplicate_dropped", update_id=event.update_id)
            return None
        return await handler(event, data)


class WorkerDirectory:
    """tg_id -> WorkerCtx, cached for ``ttl`` seconds; changes go through :meth:`put`."""

    def __init__(self, ttl: float = 30.0, capacity: int = 100_000) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._cache: TTLCache[int, WorkerCtx] = TTLCache(capacity, ttl, timer=time.monotonic)

    def get(self, tg_id: int) -> WorkerCtx | None:
        try:
            return self._cache[tg_id]  # (TTLCache.get costs several times this on every update)
        except KeyError:
            return None

    def put(self, ctx: WorkerCtx) -> None:
        self._cache[ctx.tg_id] = ctx

    def forget(self, tg_id: int) -> None:
        self._cache.pop(tg_id, None)


def _register(session: Any, user: User, default_locale: str) -> WorkerCtx:
    worker, created = workers.register(
        session,
        tg_id=user.id,
        name=user.full_name,
        username=user.username,
        language_code=user.language_code,
        default_locale=default_locale,
    )
    assert worker.id is not None
    return WorkerCtx(
        id=worker.id,
        tg_id=worker.tg_id,
        name=worker.name,
        lang=worker.lang,
        status=worker.status,
        is_new=created,
    )


class WorkerMiddleware(BaseMiddleware):
    """Injects ``app``, ``worker`` (registered on first contact) and ``lang`` into handlers."""

    def __init__(self, app: App, directory: WorkerDirectory) -> None:
        self.app = app
        self.directory = directory

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        data["app"] = self.app
        data["directory"] = self.directory
        if user is None or user.is_bot:
            return await handler(event, data)
        ctx = self.directory.get(user.id)
        if ctx is None:
            ctx = await self.app.db.run(_register, user, self.app.settings.telegram.default_locale)
            self.directory.put(WorkerCtx(ctx.id, ctx.tg_id, ctx.name, ctx.lang, ctx.status))
        data["worker"] = ctx
        data["lang"] = ctx.lang
        structlog.contextvars.bind_contextvars(tg_id=user.id, worker_id=ctx.id)
        try:
            return await handler(event, data)
        finally:
            structlog.contextvars.unbind_contextvars("tg_id", "worker_id")
