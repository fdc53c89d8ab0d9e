"""Redis-backed pieces for several bot processes: FSM storage, and the gate that gives per-user
event isolation and update de-duplication (``bot.handlers.gate``). Turned on by ``REDIS_URL``;
one process needs none of it."""

from __future__ import annotations

from typing import Any

from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage
from redis.asyncio import BlockingConnectionPool, Redis

from bot.handlers.gate import RedisGate


def redis_client(url: str, max_connections: int = 64) -> Redis:
    """A client whose pool waits for a free connection instead of failing: a burst of updates
    (each holding a per-user lock) must queue, not error with "Too many connections"."""
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30)
    return Redis(connection_pool=pool)


def redis_components(url: str) -> dict[str, Any]:
    """Keyword arguments for :func:`bot.app.make_dispatcher` when Redis is configured."""
    redis = redis_client(url)
    key_builder = DefaultKeyBuilder(prefix="crowdpin", with_bot_id=True)
    return {
        "storage": RedisStorage(redis, key_builder=key_builder),
        "gate": RedisGate.from_url(url),
        "redis": redis,
    }
