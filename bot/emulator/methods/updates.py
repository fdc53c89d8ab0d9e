"""Getting updates: getUpdates long polling and the webhook settings.

Long polling wakes up the moment an update is queued (a callback on the
bot's queue resolves the waiting future; there is no sleep loop). As on
Telegram, a second getUpdates terminates the first one with 409, and
getUpdates is refused with 409 while a webhook is set. Delivery to the
webhook itself is I/O and lives in :mod:`bot.emulator.webhook`.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import POLL_CONFLICT, WEBHOOK_ACTIVE, ApiError, bad_request
from ..state import BotState, WebhookConfig
from ..validation import UploadedFile
from . import method

if TYPE_CHECKING:
    from ..emulator import Emulator

MAX_POLL_TIMEOUT = 3600
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _set_allowed_updates(bot: BotState, p: dict[str, Any]) -> None:
    if "allowed_updates" in p:
        allowed = p["allowed_updates"]
        bot.allowed_updates = frozenset(allowed) if allowed else None  # [] = Telegram's default set


def _resolve(future: asyncio.Future[str], outcome: str) -> None:
    if not future.done():
        future.set_result(outcome)


@method("getUpdates")
async def get_updates(emu: Emulator, bot: BotState, p: dict[str, Any], files: Mapping[str, UploadedFile]) -> list[dict[str, Any]]:
    if bot.webhook is not None:
        raise ApiError(409, WEBHOOK_ACTIVE)
    limit = min(max(p.get("limit", 100), 1), 100)
    timeout = min(max(p.get("timeout", 0), 0), MAX_POLL_TIMEOUT)
    _set_allowed_updates(bot, p)
    if "offset" in p:
        before = len(bot.updates)
        bot.confirm(p["offset"])
        emu.record_delivered(before - len(bot.updates))
    if bot.active_poll is not None:
        _resolve(bot.active_poll, "conflict")
    if not bot.updates and timeout > 0:
        loop = asyncio.get_running_loop()
        poll: asyncio.Future[str] = loop.create_future()
        bot.active_poll = poll

        def wake() -> None:
            _resolve(poll, "update")

        bot.on_update.append(wake)
        timer = loop.call_later(timeout, _resolve, poll, "timeout")
        try:
            outcome = await poll
        finally:
            timer.cancel()
            bot.on_update.remove(wake)
            if bot.active_poll is poll:
                bot.active_poll = None
        if outcome == "conflict":
            raise ApiError(409, POLL_CONFLICT)
        if outcome == "webhook":
            raise ApiError(409, WEBHOOK_ACTIVE)
        if outcome == "shutdown":
            return []
    return list(itertools.islice(bot.updates, limit))


@method("setWebhook")
def set_webhook(emu: Emulator, bot: BotState, p: dict[str, Any], files: Mapping[str, UploadedFile]) -> bool:
    url = p["url"]
    if not url:
        return delete_webhook(emu, bot, p, files)
    if not url.startswith(("https://", "http://")):
        # Telegram requires HTTPS; the emulator also takes plain HTTP, for local bots.
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    max_connections = p.get("max_connections", 40)
    if not 1 <= max_connections <= 100:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    secret = p.get("secret_token")
    if secret is not None and not _SECRET_RE.fullmatch(secret):
        raise bad_request("secret token contains unallowed characters")
    if p.get("drop_pending_updates"):
        bot.updates.clear()
    _set_allowed_updates(bot, p)
    bot.webhook = WebhookConfig(url=url, secret_token=secret, max_connections=max_connections, ip_address=p.get("ip_address"))
    emu.webhook_changed(bot)
    return True


@method("deleteWebhook")
def delete_webhook(emu: Emulator, bot: BotState, p: dict[str, Any], files: Mapping[str, UploadedFile]) -> bool:
    if p.get("drop_pending_updates"):
        bot.updates.clear()
        for queue in bot.webhook_inflight.values():
            queue.clear()
    if bot.webhook is not None:
        bot.webhook = None
        emu.webhook_changed(bot)
    return True


@method("getWebhookInfo")
def get_webhook_info(emu: Emulator, bot: BotState, p: dict[str, Any], files: Mapping[str, UploadedFile]) -> dict[str, Any]:
    webhook = bot.webhook
    info: dict[str, Any] = {
        "url": webhook.url if webhook else "",
        "has_custom_certificate": False,
        "pending_update_count": bot.pending_update_count,
    }
    if webhook is not None:
        info["max_connections"] = webhook.max_connections
        if webhook.ip_address:
            info["ip_address"] = webhook.ip_address
        if webhook.last_error_date is not None:
            info["last_error_date"] = webhook.last_error_date
            info["last_error_message"] = webhook.last_error_message
        if bot.allowed_updates is not None:
            info["allowed_updates"] = sorted(bot.allowed_updates)
    return info
