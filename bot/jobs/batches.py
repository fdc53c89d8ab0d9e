"""The background job that lets batches finish: every ``STUCK_SWEEP_SECONDS`` it finishes the
tasks that can no longer reach their overlap with the workers still eligible, once their
aggregated confidence is high enough (``bot.tasks.stuck``)."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from bot.tasks import stuck
from bot.telegram.runtime import App

log = structlog.get_logger("crowdpin.quality")


class BatchSweeper:
    def __init__(self, app: App, *, interval: float) -> None:
        self.app = app
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="batch-sweeper")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def sweep(self) -> int:
        """One round; returns how many tasks were finished."""
        sweeps = await self.app.db.run(stuck.sweep_all)
        return sum(len(s.finished) for s in sweeps)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a database hiccup
                log.warning("quality.sweep_error", error=str(exc))
