"""The background job that lets batches finish: every ``STUCK_SWEEP_SECONDS`` it finishes the
tasks that can no longer reach their overlap with the workers still eligible, once their
aggregated confidence is high enough (``bot.tasks.stuck``)."""

from __future__ import annotations

import structlog

from bot.jobs.periodic import PeriodicJob
from bot.tasks import stuck
from bot.telegram.runtime import App

log = structlog.get_logger("crowdpin.quality")


class BatchSweeper(PeriodicJob):
    name = "batch-sweeper"
    error_event = "quality.sweep_error"
    sleep_first = True
    log = log

    def __init__(self, app: App, *, interval: float) -> None:
        super().__init__(interval=interval)
        self.app = app

    async def sweep(self) -> int:
        """One round; returns how many tasks were finished."""
        sweeps = await self.app.db.run(stuck.sweep_all)
        return sum(len(s.finished) for s in sweeps)

    async def tick(self) -> object:
        return await self.sweep()
