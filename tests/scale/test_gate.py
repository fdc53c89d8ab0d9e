"""The Redis gate of several replicas: each update once, one update per user at a time, and
task taps that do not load FSM state. Two dispatchers stand for two replica processes; they
share nothing but Redis."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Router
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import CallbackQuery, Message, Update
from redis.asyncio import Redis

from bot.telegram.gate import GatedDispatcher, RedisGate, use_tap_aware_fsm

TOKEN = "42:gate-test-token"
HOLD_S = 0.15


class CountingStorage(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.state_reads = 0

    async def get_state(self, key: StorageKey) -> str | None:
        self.state_reads += 1
        return await super().get_state(key)


class Recorder:
    def __init__(self) -> None:
        self.handled: list[tuple[int, float, float]] = []  # (update id, start, end)

    def router(self) -> Router:
        router = Router()

        @router.callback_query()
        async def on_query(query: CallbackQuery, state: FSMContext, raw_state: str | None = None) -> None:
            started = time.monotonic()
            await asyncio.sleep(HOLD_S)
            self.handled.append((int(query.id), started, time.monotonic()))

        @router.message()
        async def on_message(message: Message, raw_state: str | None = None) -> None:
            self.handled.append((message.message_id, time.monotonic(), time.monotonic()))

        return router


def tap(update_id: int, user_id: int, data: str = "t:l:7:0") -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "callback_query": {
                "id": str(update_id),
                "from": {"id": user_id, "is_bot": False, "first_name": "w"},
                "chat_instance": "ci",
                "data": data,
            },
        }
    )


def text(update_id: int, user_id: int) -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 0,
                "chat": {"id": user_id, "type": "private"},
                "from": {"id": user_id, "is_bot": False, "first_name": "w"},
                "text": "hello",
            },
        }
    )


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def replica(redis_url: str, prefix: str, recorder: Recorder, storage: MemoryStorage | None = None) -> GatedDispatcher:
    dp = GatedDispatcher(gate=RedisGate.from_url(redis_url, prefix=prefix), storage=storage or MemoryStorage())
    use_tap_aware_fsm(dp)
    dp.include_router(recorder.router())
    return dp


@contextlib.asynccontextmanager
async def replicas(
    redis_url: str, recorder: Recorder, count: int = 2, storage: MemoryStorage | None = None
) -> AsyncIterator[tuple[Bot, list[GatedDispatcher]]]:
    """``count`` replicas sharing one Redis key prefix, and the bot; shut down at the end as a
    replica process is (which closes each gate's Redis connection)."""
    prefix = f"test-gate-{secrets.token_hex(4)}"
    dps = [replica(redis_url, prefix, recorder, storage) for _ in range(count)]
    bot = Bot(TOKEN)
    try:
        yield bot, dps
    finally:
        for dp in dps:
            await dp.emit_shutdown(bot=bot)
            assert dp.gate.redis._writer is None  # the shutdown closed the gate's connection
        await bot.session.close()


async def test_an_update_delivered_to_two_replicas_is_handled_once(redis_url: str) -> None:
    recorder = Recorder()
    async with replicas(redis_url, recorder) as (bot, (a, b)):
        update = tap(1001, user_id=5)
        await asyncio.gather(a.feed_update(bot, update), b.feed_update(bot, update), a.feed_update(bot, update))
        await b.feed_update(bot, update)  # a late re-delivery
    assert [u for u, _, _ in recorder.handled] == [1001]


async def test_one_users_updates_never_overlap_across_replicas(redis_url: str) -> None:
    recorder = Recorder()
    async with replicas(redis_url, recorder) as (bot, (a, b)):
        await asyncio.gather(*(dp.feed_update(bot, tap(2000 + i, user_id=7)) for i, dp in enumerate([a, b, a, b])))
    spans = sorted((start, end) for _, start, end in recorder.handled)
    assert len(spans) == 4
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert next_start >= end, spans  # one at a time for this user


async def test_different_users_are_not_serialised(redis_url: str) -> None:
    recorder = Recorder()
    async with replicas(redis_url, recorder) as (bot, (a, b)):
        started = time.monotonic()
        await asyncio.gather(*(dp.feed_update(bot, tap(3000 + i, user_id=100 + i)) for i, dp in enumerate([a, b, a, b])))
    assert len(recorder.handled) == 4
    assert time.monotonic() - started < 3 * HOLD_S  # four users at once, not 4 x HOLD_S


async def test_lock_is_released_when_the_handler_fails(redis: Redis, redis_url: str) -> None:
    prefix = f"test-gate-{secrets.token_hex(4)}"
    gate = RedisGate.from_url(redis_url, prefix=prefix)
    try:
        with pytest.raises(RuntimeError):
            async with gate.admit(42, tap(4001, user_id=9)) as admitted:
                assert admitted
                raise RuntimeError("handler crashed")
        assert await redis.exists(f"{prefix}:lock:42:9") == 0
        async with gate.admit(42, tap(4002, user_id=9)) as admitted:  # the next update gets in at once
            assert admitted
    finally:
        await gate.redis.close()


async def test_task_taps_skip_the_fsm_state_but_messages_load_it(redis_url: str) -> None:
    recorder = Recorder()
    storage = CountingStorage()
    async with replicas(redis_url, recorder, count=1, storage=storage) as (bot, (dp,)):
        await dp.feed_update(bot, tap(5001, user_id=11))
        assert storage.state_reads == 0
        await dp.feed_update(bot, tap(5002, user_id=11, data="wallet:wd"))  # not a task button
        assert storage.state_reads == 1
        await dp.feed_update(bot, text(5003, user_id=11))
        assert storage.state_reads == 2
    assert [u for u, _, _ in recorder.handled] == [5001, 5002, 5003]


async def test_wire_connection_survives_script_flush_and_a_killed_connection(redis: Redis, redis_url: str) -> None:
    from bot.telegram.gate import _ACQUIRE
    from bot.telegram.redis_wire import WireScripts

    prefix = f"test-gate-{secrets.token_hex(4)}"
    wire = WireScripts(redis_url)
    try:
        keys = [f"{prefix}:seen", f"{prefix}:lock"]
        assert await wire.run(_ACQUIRE, keys, ["tok", 60, 30_000]) == 1
        assert await wire.run(_ACQUIRE, keys, ["tok", 60, 30_000]) == 1  # a resend by the holder
        assert await wire.run(_ACQUIRE, keys, ["other", 60, 30_000]) == -1  # the update was seen
        await redis.script_flush()  # a restarted Redis has no scripts: EVAL replaces EVALSHA
        assert await wire.run(_ACQUIRE, [f"{prefix}:seen2", keys[1]], ["other", 60, 30_000]) == 0  # lock busy
        host, port = wire._writer.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
        assert await redis.client_kill(f"{host}:{port}") is True
        assert await wire.run(_ACQUIRE, keys, ["tok", 60, 30_000]) == 1  # reconnected and resent
        assert await redis.get(keys[1]) == b"tok"
        results = await asyncio.gather(*(wire.call("INCR", f"{prefix}:n") for _ in range(200)))
        assert sorted(results) == list(range(1, 201))  # pipelined replies matched to their callers
    finally:
        await wire.close()
