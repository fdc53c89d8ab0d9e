"""The bot's shutdown lets the updates being handled finish first (bot.telegram.draining);
the end-to-end case, a restart in the middle of a Magic Pin tap, is in tests/masks/test_masks_e2e.py."""

from __future__ import annotations

import asyncio

from aiogram import Bot
from aiogram.types import CallbackQuery, Update

from bot.telegram.draining import DrainingDispatcher


def _tap(update_id: int) -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "callback_query": {
                "id": str(update_id),
                "from": {"id": 5, "is_bot": False, "first_name": "w"},
                "chat_instance": "ci",
                "data": "t:l:3:0",
            },
        }
    )


async def test_shutdown_hooks_run_after_the_updates_in_flight_and_a_stuck_one_is_given_up() -> None:
    dp = DrainingDispatcher(drain_seconds=0.3)
    release = asyncio.Event()
    order: list[str] = []

    async def handler(query: CallbackQuery) -> None:
        if query.id == "1":
            await release.wait()
            order.append("handled")
        else:
            await asyncio.Event().wait()  # never ends

    async def hook() -> None:
        order.append("hook")

    dp.callback_query.register(handler)
    dp.shutdown.register(hook)
    bot = Bot("42:TEST")
    handling = asyncio.create_task(dp.feed_update(bot, _tap(1)))
    await asyncio.sleep(0.01)
    assert dp.in_flight.tasks == {handling}
    shutdown = asyncio.create_task(dp.emit_shutdown(bot=bot))
    await asyncio.sleep(0.1)
    assert order == []  # the hook (closing pools and sessions) waits for the handler
    release.set()
    await asyncio.wait_for(shutdown, 2)
    assert order == ["handled", "hook"]
    assert not dp.in_flight.tasks  # a finished update is forgotten

    stuck = asyncio.create_task(dp.feed_update(bot, _tap(2)))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await dp.drain() == 1  # given up after drain_seconds, and said so
    assert 0.25 <= loop.time() - started < 2
    stuck.cancel()
    await asyncio.gather(stuck, return_exceptions=True)
    assert await dp.drain() == 0


async def test_shutdown_releases_the_updates_aiogram_keeps_in_its_event_type_cache() -> None:
    """aiogram's ``Update.event_type`` is an ``lru_cache``-d property: the class keeps the last
    128 updates alive. A shutdown clears it (and an exit hook does, for dispatchers never shut
    down): freed at interpreter teardown instead, they crashed ``python -X dev`` at exit."""
    getter = Update.__dict__["event_type"].fget
    assert _tap(7).event_type == "callback_query"
    assert getter.cache_info().currsize >= 1  # the premise: aiogram still caches them
    await DrainingDispatcher().emit_shutdown(bot=Bot("42:TEST"))
    assert getter.cache_info().currsize == 0
