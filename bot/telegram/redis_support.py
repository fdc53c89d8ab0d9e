"""Redis-backed pieces for several bot processes: FSM storage, and the gate that gives per-user
event isolation and update de-duplication (``bot.telegram.gate``). Turned on by ``REDIS_URL``;
one process needs none of it."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisStorage
from redis.asyncio import BlockingConnectionPool, Redis

from bot.telegram.gate import RedisGate


def redis_client(url: str, max_connections: int = 64) -> Redis:
    """A client whose pool waits for a free connection instead of failing: a burst of updates
    (each holding a per-user lock) must queue, not error with "Too many connections"."""
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30)
    return Redis(connection_pool=pool)


@dataclass(slots=True)
class RedisParts:
    """What :func:`bot.app.make_dispatcher` needs when Redis is configured, and the client."""

    storage: RedisStorage
    gate: RedisGate
    redis: Redis


def redis_components(url: str) -> RedisParts:
    redis = redis_client(url)
    key_builder = DefaultKeyBuilder(prefix="crowdpin", with_bot_id=True)
    return RedisParts(storage=RedisStorage(redis, key_builder=key_builder), gate=RedisGate.from_url(url), redis=redis)
