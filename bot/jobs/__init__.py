"""Long-running loops of a bot process, started and stopped with its dispatcher.

``bot.app.make_dispatcher`` registers :func:`start_jobs` on the dispatcher's start-up and
:meth:`Jobs.stop` on its shutdown, so long polling, webhook replicas and the sandbox all run the
same jobs; the running handle is ``app.jobs``. Each job survives database hiccups on its own.

* ``broadcasts``: sends queued broadcasts and resumes those whose runner died;
* ``payout_notices``: tells workers their withdrawal was paid or failed;
* ``batches``: finishes tasks that can no longer reach their overlap (``bot.tasks.stuck``);
* ``quality_fits``: the crowd model behind the accuracy rule, refitted on a thread of its own
  so that a tap never waits for it (``bot.tasks.worker_quality.BackgroundFits``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from aiogram import Bot

from bot.jobs.batches import BatchSweeper
from bot.jobs.broadcasts import BroadcastWorker
from bot.jobs.payout_notices import PayoutNotifier
from bot.tasks.worker_quality import BackgroundFits
from bot.telegram.runtime import App

log = structlog.get_logger("crowdpin.jobs")


@dataclass(slots=True)
class Jobs:
    """The running jobs of one bot."""

    broadcasts: BroadcastWorker
    payout_notices: PayoutNotifier
    batches: BatchSweeper
    quality_fits: BackgroundFits

    async def stop(self) -> None:
        """Let deliveries finish their in-flight message, then end every loop."""
        await self.broadcasts.stop()
        await self.payout_notices.stop()
        await self.batches.stop()
        await asyncio.to_thread(self.quality_fits.close)


def start_jobs(app: App, bot: Bot) -> Jobs:
    jobs = Jobs(
        broadcasts=BroadcastWorker(app, bot),
        payout_notices=PayoutNotifier(app, bot, interval=app.settings.wallet.payout_notify_seconds),
        batches=BatchSweeper(app, interval=app.settings.quality.stuck_sweep_seconds),
        quality_fits=BackgroundFits(app.db.read_session),
    )
    jobs.quality_fits.serve(app.db.engine)
    jobs.broadcasts.start()
    jobs.payout_notices.start()
    jobs.batches.start()
    log.info("jobs.started", jobs=["broadcasts", "payout_notices", "batches", "quality_fits"])
    return jobs
