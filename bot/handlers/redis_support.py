"""Redis-backed pieces for several bot processes: FSM storage, per-user event isolation and
update de-duplication. Turned on by ``REDIS_URL``; one process needs none of it."""

from __future__ import annotations

from typing import Any

from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisEventIsolation, RedisStorage
from redis.asyncio import BlockingConnectionPool, Redis


class RedisSeenUpdates:
    """``SET NX`` with a day's expiry: an update id is handled by the first replica that sees it."""

    def __init__(self, redis: Redis, prefix: str = "crowdpin:update", ttl_seconds: int = 86_400) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl_seconds

    async def first_time(self, bot_id: int, update_id: int) -> bool:
        return bool(await self.redis.set(f"{self.prefix}:{bot_id}:{update_id}", b"1", nx=True, ex=self.ttl))


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
        "events_isolation": RedisEventIsolation(redis, key_builder=key_builder, lock_kwargs={"timeout": 30}),
        "seen": RedisSeenUpdates(redis),
        "redis": redis,
    }
