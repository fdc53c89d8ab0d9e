"""The emulator on HTTP: the Bot API, file downloads, faults, webhooks and the control API.

Routes mirror api.telegram.org and a self-hosted ``telegram-bot-api``:
``/bot<token>/<method>`` (GET or POST; query, urlencoded, multipart or JSON)
and ``/file/bot<token>/<file_path>``, so aiogram connects with
``TelegramAPIServer.from_base(server.base_url)``. The control API for other
processes lives under ``/_emu/`` (see :mod:`bot.emulator.control`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from .control import add_control_routes
from .emulator import Emulator
from .errors import NOT_FOUND, UNAUTHORIZED, ApiError
from .faults import BAD_GATEWAY_HTML, Fault
from .http_body import MAX_REQUEST_BYTES, read_request
from .webhook import WebhookManager

log = logging.getLogger(__name__)


def json_response(payload: dict[str, Any], status: int = 200) -> web.Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return web.Response(text=body, status=status, content_type="application/json")


class EmulatorServer:
    """Serves an :class:`Emulator` over HTTP. ``port=0`` picks a free port.

    Use ``await server.start()`` / ``await server.stop()`` or ``async with``.
    """

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0, *, control: bool = True) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self.control = control
        self._runner: web.AppRunner | None = None
        self._webhooks = WebhookManager(emulator)

    @property
    def base_url(self) -> str:
        """``http://host:port`` — what ``TelegramAPIServer.from_base`` wants."""
        if self._runner is None:
            raise RuntimeError("server not started")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        if self.control:
            add_control_routes(app, self.emulator)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(self.make_app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        await self._webhooks.start()

    async def stop(self) -> None:
        if self._runner is None:
            return
        self.emulator.release_pollers()
        await self._webhooks.stop()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- handlers -------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token, method = request.match_info["token"], request.match_info["method"]
        fault = self.emulator.faults.take(method)
        if fault is not None:
            self.emulator.record_fault(self._method_name(method), fault)
            early = await self._play_fault(request, fault)
            if early is not None:
                return early
        try:
            params, files = await read_request(request)
            result = await self.emulator.call(token, method, params, files)
            response = json_response({"ok": True, "result": result})
        except ApiError as err:
            response = json_response(err.to_payload(), status=err.error_code)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # an emulator bug must not look like a Telegram answer
            log.exception("emulator failed on %s", method)
            response = json_response({"ok": False, "error_code": 500, "description": f"Internal Server Error: emulator bug: {err!r}"}, 500)
        if fault is not None and fault.kind == "drop_after":
            return self._drop(request)
        return response

    async def _play_fault(self, request: web.Request, fault: Fault) -> web.StreamResponse | None:
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "drop":
            return self._drop(request)
        if fault.kind == "429":
            err = ApiError(429, f"Too Many Requests: retry after {fault.retry_after}", retry_after=fault.retry_after)
            return json_response(err.to_payload(), 429)
        if fault.kind == "500":
            return json_response({"ok": False, "error_code": 500, "description": "Internal Server Error"}, 500)
        if fault.kind == "502":
            return web.Response(text=BAD_GATEWAY_HTML, status=502, content_type="text/html")
        return None

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        """Close the connection without an answer, as a broken network does."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=499)

    def _method_name(self, method: str) -> str:
        spec = self.emulator.spec.method(method)
        return spec.name if spec is not None else method

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        bot = self.emulator.bots.get(request.match_info["token"])
        if bot is None:
            return json_response({"ok": False, "error_code": 401, "description": UNAUTHORIZED}, 401)
        stored = self.emulator.files.by_path(bot.id, request.match_info["path"])
        if stored is None:
            return json_response({"ok": False, "error_code": 404, "description": NOT_FOUND}, 404)
        content_type = "image/jpeg" if stored.kind == "photo" else (stored.mime_type or "application/octet-stream")
        return web.Response(body=stored.content(), content_type=content_type)
