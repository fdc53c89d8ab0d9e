"""A shutdown that lets the work in hand finish first.

aiogram handles each update in a task of its own and, when polling stops or the webhook
server shuts down, runs the shutdown hooks (ours stop the jobs and close the picture pool)
and closes the bot's HTTP session without waiting for those tasks. A tap still being
segmented when the bot stopped then ran on against closed resources: in the test runs its
photo edit made aiogram open a new HTTP session that nobody closed, and some such taps ended
in the error handler ("something went wrong"). The answer itself was safe (recorded in its
own transaction, exactly once), but the worker was left looking at the old task. A Mini App
request (a segmentation, a Keep) was in the same position.

:class:`InFlight` remembers the tasks doing a worker's work (updates, Mini App requests);
:class:`DrainingDispatcher` feeds it every update and, before any shutdown hook runs, waits up
to ``drain_seconds`` for all of them.
"""

from __future__ import annotations

import asyncio
import atexit
from typing import Any

import structlog
from aiogram import Bot, Dispatcher
from aiogram.types import Update

log = structlog.get_logger("crowdpin.bot")

DRAIN_SECONDS = 10.0  # a Magic Pin segmentation takes under 2 s; process managers wait 30-90 s


class InFlight:
    """The tasks handling a worker's input right now, until each ends."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        # Set when the drain starts: from then on new work is refused (the Mini App answers
        # 503). Polling mode stops its Mini App server only after the shutdown hooks, so a
        # request could otherwise start after the drain and meet closed pools.
        self.closing = False

    def track(self) -> None:
        """Count the current task as in flight until it ends."""
        task = asyncio.current_task()
        if task is not None and task not in self.tasks:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drain(self, seconds: float) -> int:
        """Wait for the tasks in flight (at most ``seconds``); how many did not finish."""
        self.closing = True
        current = asyncio.current_task()
        pending = {task for task in self.tasks if task is not current and not task.done()}
        if not pending:
            return 0
        log.info("updates.draining", in_flight=len(pending))
        _, left = await asyncio.wait(pending, timeout=seconds)
        if left:
            log.warning("updates.drain_timeout", left=len(left), seconds=seconds)
        return len(left)


class DrainingDispatcher(Dispatcher):
    """A dispatcher whose shutdown first waits for the work in flight (``in_flight``: the
    running bot's, shared with its Mini App server)."""

    def __init__(self, *, in_flight: InFlight | None = None, drain_seconds: float = DRAIN_SECONDS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_flight = in_flight if in_flight is not None else InFlight()
        self.drain_seconds = drain_seconds

    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        self.in_flight.track()
        return await super().feed_update(bot, update, **kwargs)

    async def drain(self) -> int:
        return await self.in_flight.drain(self.drain_seconds)

    async def emit_shutdown(self, *args: Any, **kwargs: Any) -> None:
        await self.drain()
        try:
            await super().emit_shutdown(*args, **kwargs)
        finally:
            forget_cached_updates()


def forget_cached_updates() -> None:
    """Release the updates aiogram keeps after they were handled.

    ``Update.event_type`` is an ``lru_cache``-d property, so the class itself holds the last 128
    updates (with their messages and dates). Left there, they are freed only when the
    interpreter tears the class down, after pydantic-core's own state: under ``python -X dev``
    that ended the test run with a segmentation fault in pydantic-core's time-zone object.
    Cleared at every shutdown and once more at exit."""
    getter = getattr(Update.__dict__.get("event_type"), "fget", None)
    clear = getattr(getter, "cache_clear", None)
    if callable(clear):
        clear()


atexit.register(forget_cached_updates)  # also those of a dispatcher that was never shut down (tests)
