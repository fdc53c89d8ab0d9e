"""A shutdown that lets the updates being handled finish first.

aiogram handles each update in a task of its own and, when polling stops or the webhook
server shuts down, runs the shutdown hooks and closes the bot's HTTP session without waiting
for those tasks. A tap that was being segmented when the bot restarted then found the
picture pool closed by a hook (the worker read "something went wrong") or, a moment later,
the session gone: aiogram opened a new one to edit the photo and nobody closed it. The
answer itself was safe (recorded in its own transaction, exactly once), but the worker was
left looking at the old task.

:class:`DrainingDispatcher` remembers the task of every update it is fed and, before any
shutdown hook runs, waits up to ``drain_seconds`` for them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiogram import Bot, Dispatcher
from aiogram.types import Update

log = structlog.get_logger("crowdpin.bot")

DRAIN_SECONDS = 10.0  # a Magic Pin segmentation takes under 2 s; process managers wait 30-90 s


class DrainingDispatcher(Dispatcher):
    """A dispatcher whose shutdown first waits for the updates still being handled."""

    def __init__(self, *, drain_seconds: float = DRAIN_SECONDS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drain_seconds = drain_seconds
        self.in_flight: set[asyncio.Task[Any]] = set()

    def track(self) -> None:
        """Count the current task (the one handling an update) as in flight until it ends."""
        task = asyncio.current_task()
        if task is not None and task not in self.in_flight:
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)

    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        self.track()
        return await super().feed_update(bot, update, **kwargs)

    async def drain(self) -> int:
        """Wait for the updates in flight (at most ``drain_seconds``); how many did not finish."""
        current = asyncio.current_task()
        pending = {task for task in self.in_flight if task is not current and not task.done()}
        if not pending:
            return 0
        log.info("updates.draining", in_flight=len(pending))
        _, left = await asyncio.wait(pending, timeout=self.drain_seconds)
        if left:
            log.warning("updates.drain_timeout", left=len(left), seconds=self.drain_seconds)
        return len(left)

    async def emit_shutdown(self, *args: Any, **kwargs: Any) -> None:
        await self.drain()
        await super().emit_shutdown(*args, **kwargs)
