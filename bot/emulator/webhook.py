"""Webhook delivery, as Telegram does it.

When a bot has set a webhook, its queued updates are POSTed as JSON to the
URL with the ``X-Telegram-Bot-Api-Secret-Token`` header. A delivery that
fails (non-2xx answer, refused connection, timeout) is retried with doubling
back-off and recorded in getWebhookInfo's ``last_error_*``. Updates of one
chat are delivered strictly in order, one at a time; different chats are
delivered concurrently, at most ``max_connections`` at once (40 by default).
A bot may answer a delivery with a Bot API call in the response body, which
is executed like Telegram does (its result is not reported back).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import aiohttp

from .errors import ApiError
from .http_body import parse_body, read_multipart
from .state import BotState, WebhookConfig
from .validation import UploadedFile

if TYPE_CHECKING:
    from .emulator import Emulator

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DELIVERY_TIMEOUT_S = 60.0


def ordering_key(update: dict[str, Any]) -> Any:
    """Updates with the same key are delivered in order; chats are independent of each other."""
    for value in update.values():
        if isinstance(value, dict):
            chat = value.get("chat") or (value.get("message") or {}).get("chat")
            if chat:
                return chat["id"]
            if "from" in value:
                return value["from"]["id"]
    return None


class WebhookDeliverer:
    """Delivers one bot's updates while its webhook is set."""

    def __init__(self, emulator: Emulator, bot: BotState, session: aiohttp.ClientSession) -> None:
        self.emulator = emulator
        self.bot = bot
        self.session = session
        self._lanes = bot.webhook_inflight  # chat -> its claimed updates, delivered in order
        self._wake = asyncio.Event()
        self._workers: dict[Any, asyncio.Task[None]] = {}  # chat -> the task delivering its lane
        self._stopping = False
        bot.on_update.append(self._wake.set)
        self.task = asyncio.create_task(self._run(), name=f"webhook-{bot.account.username}")

    @property
    def finished(self) -> bool:
        return self.task.done()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        try:
            while self.bot.webhook is not None and not self._stopping:
                self._claim(self.bot.webhook)
                await self._wake.wait()
                self._wake.clear()
        finally:
            workers = list(self._workers.values())
            for worker in workers:
                worker.cancel()
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)
            self._requeue()
            with contextlib.suppress(ValueError):
                self.bot.on_update.remove(self._wake.set)

    def _claim(self, webhook: WebhookConfig) -> None:
        for key, waiting in self._lanes.items():
            if key not in self._workers:  # left behind while the webhook was briefly unset
                self._start(key, waiting)
        updates = self.bot.updates
        while updates:
            key = ordering_key(updates[0])
            lane = self._lanes.get(key)
            if lane is None:
                if len(self._lanes) >= webhook.max_connections:
                    return
                lane = self._lanes[key] = deque()
                self._start(key, lane)
            lane.append(updates.popleft())

    def _start(self, key: Any, lane: deque[dict[str, Any]]) -> None:
        self._workers[key] = asyncio.create_task(self._drain(key, lane))

    def _requeue(self) -> None:
        """Give undelivered updates back to the queue (getUpdates may fetch them now)."""
        leftovers = [update for lane in self._lanes.values() for update in lane]
        self._lanes.clear()
        if leftovers:
            merged = sorted([*leftovers, *self.bot.updates], key=lambda u: u["update_id"])
            self.bot.updates.clear()
            self.bot.updates.extend(merged)
            self.bot.signal_updates()

    async def _drain(self, key: Any, lane: deque[dict[str, Any]]) -> None:
        try:
            while lane:
                update = lane[0]
                if not await self._deliver(update):
                    return  # the webhook went away: the lane stays for a requeue (or a new worker)
                if lane and lane[0] is update:  # deleteWebhook(drop_pending_updates) may have emptied it
                    lane.popleft()
                self.emulator.record_delivered(1)
            if self._lanes.get(key) is lane:
                del self._lanes[key]
        finally:
            if self._workers.get(key) is asyncio.current_task():
                del self._workers[key]
            self._wake.set()

    async def _deliver(self, update: dict[str, Any]) -> bool:
        """POST until accepted; False if the webhook went away meanwhile."""
        delay = self.emulator.webhook_retry_delay
        while True:
            webhook = self.bot.webhook
            if webhook is None or self._stopping:
                return False
            error = await self._post(webhook, update)
            self.emulator.record_webhook_attempt(error is None)
            if error is None:
                return True
            webhook.last_error_date = self.emulator.unix_time()
            webhook.last_error_message = error
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.emulator.webhook_max_retry_delay)

    async def _post(self, webhook: WebhookConfig, update: dict[str, Any]) -> str | None:
        headers = {"Content-Type": "application/json"}
        if webhook.secret_token:
            headers[SECRET_HEADER] = webhook.secret_token
        body = json.dumps(update, ensure_ascii=False).encode()
        try:
            timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S)
            async with self.session.post(webhook.url, data=body, headers=headers, timeout=timeout) as response:
                if not 200 <= response.status < 300:
                    return f"Wrong response from the webhook: {response.status} {response.reason}"
                await self._run_reply(response)
                return None
        except TimeoutError:
            return "Read timeout expired"
        except aiohttp.ClientConnectorError:
            return "Connection refused"
        except aiohttp.ClientError as err:
            return f"Connection error: {type(err).__name__}"

    async def _run_reply(self, response: aiohttp.ClientResponse) -> None:
        """Execute a Bot API call the bot put in its answer, as Telegram does."""
        params: dict[str, Any] = {}
        files: dict[str, UploadedFile] = {}
        try:
            if response.content_type == "multipart/form-data":
                await read_multipart(aiohttp.MultipartReader(response.headers, response.content), params, files)
            elif response.content_type in ("application/json", "application/x-www-form-urlencoded"):
                parse_body(response.content_type, await response.read(), params)
            method = params.pop("method", None)
            if isinstance(method, str) and method:
                await self.emulator.call(self.bot.token, method, params, files)
        except ApiError as err:
            log.debug("method in webhook answer failed: %s", err.description)


class WebhookManager:
    """Runs a deliverer for every bot whose webhook is set."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._deliverers: dict[str, WebhookDeliverer] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.emulator.add_webhook_listener(self._changed)
        for bot in self.emulator.bots.values():
            if bot.webhook is not None:
                self._changed(bot)

    def _changed(self, bot: BotState) -> None:
        if self._session is None:
            return
        deliverer = self._deliverers.get(bot.token)
        if bot.webhook is not None and (deliverer is None or deliverer.finished):
            self._deliverers[bot.token] = WebhookDeliverer(self.emulator, bot, self._session)
        elif deliverer is not None:
            deliverer.wake()

    async def stop(self) -> None:
        self.emulator.remove_webhook_listener(self._changed)
        for deliverer in self._deliverers.values():
            await deliverer.stop()
        self._deliverers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
