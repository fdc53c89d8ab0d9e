"""Admission of updates across replicas: each update once, one update per user at a time.

aiogram's Redis pieces do this in four round trips per update, each a few hundred microseconds
of Python in redis-py: ``SET NX`` for de-duplication, a redis-py ``Lock`` (acquire, release)
for isolation, and a ``GET`` of the FSM state. With several replicas that was a third of the
bot's CPU per answer. Here one Lua script checks "seen" and takes the user's lock in a single
round trip, a second releases it (both on a lean pipelined connection, ``redis_wire``), and a
tap on a task button (which no FSM state concerns) skips loading the state.

:class:`GatedDispatcher` admits every update before aiogram's middlewares run, so the FSM
state is read under the user's lock (the ordering aiogram's own isolation guarantees).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiogram import Bot, Dispatcher
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.types import TelegramObject, Update

from bot.telegram.buttons import TASK_TAP_PREFIX
from bot.telegram.draining import DrainingDispatcher
from bot.telegram.redis_wire import Script, WireScripts

log = structlog.get_logger("crowdpin.bot")

# KEYS: seen key, lock key. ARGV: lock token, seen ttl (s), lock ttl (ms).
# -1: seen before (drop); 1: admitted (lock held, update marked seen); 0: the user's lock is busy.
# Safe to send twice (a reconnect resends): the holder of the token is admitted again.
_ACQUIRE = Script("""
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then return 1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if holder then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
return 1
""")
# KEYS: lock key. ARGV: token. Only the holder releases (an expired lock may be someone else's).
_RELEASE = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")
# KEYS: seen key. ARGV: ttl (s). 1 the first time, 0 after.
_FIRST_TIME = Script("""
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 1 end
return 0
""")


def user_of(update: Update) -> int | None:
    event = update.event
    user = getattr(event, "from_user", None)
    return user.id if user is not None else None


class RedisGate:
    """Per-update de-duplication and per-user mutual exclusion shared by all replicas."""

    def __init__(
        self,
        redis: WireScripts,
        *,
        prefix: str = "crowdpin",
        seen_ttl_s: int = 86_400,
        lock_ttl_ms: int = 30_000,
        poll_s: float = 0.002,
        max_poll_s: float = 0.05,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.seen_ttl_s = seen_ttl_s
        self.lock_ttl_ms = lock_ttl_ms
        self.poll_s = poll_s
        self.max_poll_s = max_poll_s

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisGate:
        return cls(WireScripts(url), **kwargs)

    @asynccontextmanager
    async def admit(self, bot_id: int, update: Update) -> AsyncIterator[bool]:
        """Yields True when this replica handles the update now (holding the user's lock),
        False when the update was handled before (by any replica)."""
        seen = f"{self.prefix}:update:{bot_id}:{update.update_id}"
        user = user_of(update)
        if user is None:
            yield bool(await self.redis.run(_FIRST_TIME, [seen], [self.seen_ttl_s]))
            return
        lock = f"{self.prefix}:lock:{bot_id}:{user}"
        token = secrets.token_hex(8)
        delay = self.poll_s
        while True:
            got = int(await self.redis.run(_ACQUIRE, [seen, lock], [token, self.seen_ttl_s, self.lock_ttl_ms]))
            if got != 0:
                break
            await asyncio.sleep(delay)  # the user's previous update is in flight somewhere
            delay = min(self.max_poll_s, delay * 2)
        if got < 0:
            yield False
            return
        try:
            yield True
        finally:
            await self.redis.run(_RELEASE, [lock], [token])


class GatedDispatcher(DrainingDispatcher):
    """A dispatcher that admits each update through a :class:`RedisGate` first (and, as every
    dispatcher of the bot, lets the updates in flight finish before it shuts down)."""

    def __init__(self, *, gate: RedisGate, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.shutdown.register(gate.redis.close)

    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        self.in_flight.track()  # waiting at the gate counts as in flight: the gate is released at the end
        async with self.gate.admit(bot.id, update) as admitted:
            if not admitted:
                log.info("update.duplicate_dropped", update_id=update.update_id)
                return None
            return await super().feed_update(bot, update, **kwargs)


def is_task_tap(event: TelegramObject) -> bool:
    query = event.callback_query if isinstance(event, Update) else None
    data = query.data if query is not None else None
    return data is not None and data.startswith(TASK_TAP_PREFIX)


class TapAwareFSM(FSMContextMiddleware):
    """aiogram's FSM middleware, except that a tap on a task button does not load the FSM state:
    those handlers use no state, and on Redis the load is a round trip per answer.
    (``raw_state`` is None for them; no filter of theirs looks at it.)"""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not is_task_tap(event):
            return await super().__call__(handler, event, data)
        context = self.resolve_event_context(data["bot"], data)
        data["fsm_storage"] = self.storage
        if context is not None:
            data.update({"state": context, "raw_state": None})
        return await handler(event, data)


def use_tap_aware_fsm(dp: Dispatcher) -> None:
    """Swap the dispatcher's FSM middleware for :class:`TapAwareFSM` (same storage, isolation
    and strategy, same place in the chain: aiogram registers it last of its own)."""
    old = dp.fsm
    dp.update.outer_middleware.unregister(old)
    dp.fsm = TapAwareFSM(storage=old.storage, strategy=old.strategy, events_isolation=old.events_isolation)
    dp.update.outer_middleware(dp.fsm)
