"""What every periodic background job of the bot shares: one task, started and cancelled with
the bot, that runs the job's round every ``interval`` seconds and outlives a failed round."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class PeriodicJob:
    """Subclasses set ``name``, ``log`` and ``error_event`` and implement :meth:`tick`."""

    name = "periodic-job"
    error_event = "job.error"
    sleep_first = False  # wait one interval before the first round (a job with nothing to do at start)
    log: Any

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def tick(self) -> object:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _loop(self) -> None:
        if self.sleep_first:
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a database hiccup
                self.log.warning(self.error_event, error=str(exc))
            await asyncio.sleep(self.interval)
