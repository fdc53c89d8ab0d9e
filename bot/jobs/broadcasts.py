"""The background broadcast job: sends every broadcast that needs a runner and keeps each
operator's status message current.

Broadcasts confirmed with ``/broadcast``, queued by ``crowdpin admin broadcast ... --detach``, or
left behind by a runner that died are all found here by polling ``bot.broadcast.lease``;
``/broadcast`` wakes the job at once (``app.jobs.broadcasts.wake()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from bot import workers
from bot.broadcast import lease, service
from bot.broadcast.delivery import Delivery, RunResult
from bot.broadcast.models import BroadcastStatus
from bot.broadcast.pacing import shared_pacer
from bot.clock import utcnow
from bot.handlers.broadcast_views import render_status, stop_keyboard
from bot.telegram.broadcast_transport import AiogramTransport
from bot.telegram.runtime import App

log = structlog.get_logger("crowdpin.broadcast")

STATUS_EVERY = 3.0  # seconds between edits of an operator's status message
POLL_EVERY = 2.0  # seconds between looks for broadcasts to send
ERROR_COOLDOWN = 60.0  # after a fatal error (token revoked...), wait before trying that broadcast again


class StatusReporter:
    """Edits one operator's status message, at most every ``every`` seconds and only on change."""

    def __init__(
        self,
        bot: Bot,
        app: App,
        broadcast_id: int,
        chat_id: int,
        message_id: int,
        lang: str,
        every: float = STATUS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot, self.app, self.broadcast_id = bot, app, broadcast_id
        self.chat_id, self.message_id, self.lang, self.every = chat_id, message_id, lang, every
        self._clock = clock  # a test moves it by hand; sleeping would make the throttle timing luck
        self._last_text = ""
        self._last_at = 0.0
        self.edits = 0

    async def update(self, *, final: bool = False) -> None:
        if not final and self._clock() - self._last_at < self.every:
            return
        p = await self.app.db.run(service.progress, self.broadcast_id)
        text = render_status(p, self.lang, self.app.settings.broadcast.broadcast_rate)
        if text == self._last_text:
            return
        live = p.status in (BroadcastStatus.PENDING, BroadcastStatus.RUNNING) and not final
        try:
            await self.bot.edit_message_text(
                text=text,
                chat_id=self.chat_id,
                message_id=self.message_id,
                reply_markup=stop_keyboard(self.broadcast_id, self.lang) if live else None,
            )
            self.edits += 1
        except TelegramAPIError as exc:  # deleted message, not modified...: not worth failing for
            log.info("broadcast.status_edit_failed", error=str(exc))
        self._last_text, self._last_at = text, self._clock()

    async def run(self, done: asyncio.Event) -> None:
        while not done.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), self.every)
            await self.update(final=done.is_set())


class BroadcastWorker:
    """Sends every broadcast that needs a runner: queued ones, and those whose runner died.

    All deliveries of the process share one pacer (in Redis when REDIS_URL is set, so all
    replicas share it); several replicas may run this worker, the lease keeps one runner per
    broadcast.
    """

    def __init__(self, app: App, bot: Bot, *, poll: float = POLL_EVERY, status_every: float = STATUS_EVERY) -> None:
        self.app = app
        self.bot = bot
        self.poll = poll
        self.status_every = status_every
        settings = app.settings.broadcast
        self.pacer = shared_pacer(
            settings.broadcast_rate, settings.per_chat_interval, redis_url=app.settings.redis.redis_url, bot_id=str(bot.id)
        )
        self.transport = AiogramTransport(bot)
        self._running: dict[int, tuple[Delivery, asyncio.Task[RunResult]]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._cooldown: dict[int, float] = {}
        self.results: list[RunResult] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="broadcast-worker")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Let every delivery finish its in-flight message and release its broadcast."""
        self._stopping = True
        self._wake.set()
        for delivery, _ in self._running.values():
            delivery.stop()
        tasks: list[asyncio.Task[Any]] = [task for _, task in self._running.values()]
        if self._task is not None:
            tasks.append(self._task)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                for bid in await self.app.db.run(lease.runnable, utcnow()):
                    if bid not in self._running and not self._stopping and self._cooldown.get(bid, 0) <= time.monotonic():
                        self._spawn(bid)
            except Exception as exc:  # noqa: BLE001 - a DB hiccup must not end the worker
                log.error("broadcast.worker_error", error=str(exc))
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    def _spawn(self, broadcast_id: int) -> None:
        delivery = Delivery(self.app.db, self.transport, self.pacer, runner=lease.new_runner_id("bot"))
        task = asyncio.create_task(self._run(delivery, broadcast_id), name=f"broadcast-{broadcast_id}")
        self._running[broadcast_id] = (delivery, task)
        task.add_done_callback(functools.partial(self._forget, broadcast_id))

    def _forget(self, broadcast_id: int, _task: asyncio.Task[RunResult]) -> None:
        self._running.pop(broadcast_id, None)

    async def _run(self, delivery: Delivery, broadcast_id: int) -> RunResult:
        broadcast = await self.app.db.run(service.get, broadcast_id)
        reporter = None
        if broadcast.status_chat_id and broadcast.status_message_id:
            lang = self.app.settings.telegram.default_locale
            if broadcast.created_by:
                operator = await self.app.db.run(workers.get_by_tg, broadcast.created_by)
                lang = operator.lang if operator is not None else lang
            reporter = StatusReporter(
                self.bot, self.app, broadcast_id, broadcast.status_chat_id, broadcast.status_message_id, lang, self.status_every
            )
        done = asyncio.Event()
        side = asyncio.create_task(reporter.run(done)) if reporter else None
        try:
            result = await delivery.run(broadcast_id)
        except Exception as exc:
            log.exception("broadcast.run_crashed", broadcast_id=broadcast_id, error=str(exc))
            raise
        finally:
            done.set()
            if side is not None:
                with contextlib.suppress(Exception):
                    await side
        self.results.append(result)
        if result.status == "error":
            self._cooldown[broadcast_id] = time.monotonic() + ERROR_COOLDOWN
        return result
