"""The HTTP session to the Bot API, with two fixes that matter for CPU per answer.

* aiogram parametrises ``Response[<return type>]`` on every call; pydantic keeps parametrised
  generics only weakly, so without a strong reference each call rebuilds the model class
  (about 1 ms of CPU, far more under load). Holding the classes here makes it a dict lookup.
* A tap on a label costs two Bot API calls (answer the callback, edit the photo into the next
  task) whose results nobody reads. Through aiogram's method objects each call validates its
  arguments into pydantic models, dumps them again into a form, and validates the returned
  message into nested models: most of the bot's CPU per answer. :func:`call_json` posts the
  arguments as one JSON body over the same aiohttp session and returns the raw result; a
  failure is still classified by aiogram (``TelegramBadRequest``, ``TelegramRetryAfter``...),
  from the method object built only then.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response
from aiohttp import ClientError, ClientTimeout

from bot.telegram.metrics import Metrics

_RESPONSE_TYPES: dict[Any, Any] = {}
_JSON_HEADERS = {"Content-Type": "application/json"}

SENDING_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendMediaGroup",
        "copyMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageMedia",
        "editMessageReplyMarkup",
    }
)


def count_sent(metrics: Metrics, api_method: str) -> None:
    if api_method in SENDING_METHODS:
        metrics.sent.inc()


class BotApiSession(AiohttpSession):
    metrics: Metrics | None = None
    _client_timeout: ClientTimeout | None = None

    def check_response(self, bot: Bot, method: TelegramMethod[Any], status_code: int, content: str) -> Response[Any]:
        returning = method.__returning__
        if returning not in _RESPONSE_TYPES:
            _RESPONSE_TYPES[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)

    async def post_json(self, bot: Bot, api_method: str, payload: dict[str, Any], method: Callable[[], TelegramMethod[Any]]) -> Any:
        """POST ``payload`` to ``api_method``; the raw ``result`` on success, aiogram's exception
        otherwise (``method`` builds the aiogram method object the exception names)."""
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=api_method)
        timeout = self._client_timeout  # built once (aiohttp would build one per call from the float)
        if timeout is None or timeout.total != self.timeout:
            timeout = self._client_timeout = ClientTimeout(total=self.timeout)
        try:
            async with session.post(url, data=self.json_dumps(payload), headers=_JSON_HEADERS, timeout=timeout) as resp:
                status, content = resp.status, await resp.text()
        except TimeoutError as exc:
            raise TelegramNetworkError(method=method(), message="Request timeout error") from exc
        except ClientError as exc:
            raise TelegramNetworkError(method=method(), message=f"{type(exc).__name__}: {exc}") from exc
        if HTTPStatus.OK <= status <= HTTPStatus.IM_USED:
            try:
                data = self.json_loads(content)
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("ok") is True:
                if self.metrics is not None:
                    count_sent(self.metrics, api_method)
                return data.get("result")
        try:
            return self.check_response(bot, method(), status, content).result
        except TelegramRetryAfter:
            if self.metrics is not None:
                self.metrics.http_429.inc()
            raise


async def call_json(bot: Bot, api_method: str, payload: dict[str, Any], method: Callable[[], TelegramMethod[Any]]) -> Any:
    """Call a Bot API method whose result the caller does not need typed (see the module doc).

    With any other session (a test's, a custom one) this is simply ``await bot(method())``.
    """
    session = bot.session
    if isinstance(session, BotApiSession):
        return await session.post_json(bot, api_method, payload, method)
    return await bot(method())


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
        count_sent(self.metrics, method.__api_method__)
        return result


def make_session(api_base: str | None = None, metrics: Metrics | None = None, **kwargs: Any) -> BotApiSession:
    """A session for Telegram, or for a self-hosted / local Bot API server at ``api_base``."""
    if api_base:
        kwargs["api"] = TelegramAPIServer.from_base(api_base)
    session = BotApiSession(**kwargs)
    if metrics is not None:
        session.metrics = metrics
        session.middleware(MetricsRequestMiddleware(metrics))
    return session
