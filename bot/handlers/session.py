"""The HTTP session to the Bot API, with two fixes that matter for CPU per answer.

* aiogram parametrises ``Response[<return type>]`` on every call; pydantic keeps parametrised
  generics only weakly, so without a strong reference each call rebuilds the model class
  (about 1 ms of CPU, far more under load). Holding the classes here makes it a dict lookup.
* Every successful call's result is validated into aiogram's pydantic types; for an edited
  photo message that is a few hundred microseconds of nested models nobody reads. Calls made
  through :func:`call_unread` skip that on success (errors are still parsed and raised as
  usual) and return the raw JSON result.
"""

from __future__ import annotations

import contextvars
from http import HTTPStatus
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import TelegramMethod
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods.base import Response

from bot.handlers.metrics import Metrics

_RESPONSE_TYPES: dict[Any, Any] = {}
_UNREAD: contextvars.ContextVar[bool] = contextvars.ContextVar("crowdpin_result_unread", default=False)


async def call_unread(bot: Bot, method: TelegramMethod[Any]) -> Any:
    """Call ``method`` when only success or failure matters: the result comes back as raw JSON."""
    token = _UNREAD.set(True)
    try:
        return await bot(method)
    finally:
        _UNREAD.reset(token)


class BotApiSession(AiohttpSession):
    def check_response(self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str) -> Response[Any]:
        if _UNREAD.get() and HTTPStatus.OK <= status_code <= HTTPStatus.IM_USED:
            try:
                data = self.json_loads(content)
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("ok") is True:
                return Response[Any].model_construct(ok=True, result=data.get("result"))
        returning = method.__returning__
        if returning not in _RESPONSE_TYPES:
            _RESPONSE_TYPES[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)


SENDING_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendMediaGroup", "copyMessage", "editMessageText", "editMessageCaption",
     "editMessageMedia", "editMessageReplyMarkup"}
)


class MetricsRequestMiddleware(BaseRequestMiddleware):
    """Counts messages sent or edited and 429s received, for Prometheus."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, make_request: NextRequestMiddlewareType[Any], bot: Bot, method: TelegramMethod[Any]) -> Any:
        try:
            result = await make_request(bot, method)
        except TelegramRetryAfter:
            self.metrics.http_429.inc()
            raise
        if method.__api_method__ in SENDING_METHODS:
            self.metrics.sent.inc()
        return result


def make_session(api_base: str | None = None, metrics: Metrics | None = None, **kwargs: Any) -> BotApiSession:
    """A session for Telegram, or for a self-hosted / local Bot API server at ``api_base``."""
    if api_base:
        kwargs["api"] = TelegramAPIServer.from_base(api_base)
    session = BotApiSession(**kwargs)
    if metrics is not None:
        session.middleware(MetricsRequestMiddleware(metrics))
    return session
