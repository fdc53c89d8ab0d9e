"""The browser sandbox's page server: a Telegram-like chat drawn from the emulator's state.

The page (``static/``: plain HTML, CSS and JavaScript, nothing fetched from the internet) talks
only to this server, on its own origin; this server talks to the emulator through its HTTP
control API (``/_emu/...``), exactly as any other process would. So the chat works against an
emulator in this process (``crowdpin demo --web``) or anywhere else.

The page plays simulated users that it created here; it cannot act for anyone else (a user id
it did not create gets 403), so a second tab or a script cannot tap another worker's buttons
through this server.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

from bot.i18n import LOCALES, catalog, normalize_locale

STATIC = resources.files("bot.webchat") / "static"
ASSETS = {"chat.js": "text/javascript", "chat.css": "text/css"}
ANSWER_WAIT_S = 3.0  # how long a tap waits for the bot's callback answer (a toast), like a client's spinner
FEED_TIMEOUT_S = 25.0
MAX_NAME = 64
MAX_TEXT = 4096


def texts(lang: str) -> dict[str, str]:
    """The page's own words (``webchat.*`` in the catalogs), without the prefix."""
    prefix = "webchat."
    return {key[len(prefix) :]: value for key, value in catalog(lang).items() if key.startswith(prefix)}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), status=status, content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"ok": False, "error": message}, status)


class ControlError(Exception):
    """The emulator refused a control call; ``missing``: it has no such endpoint at all (an
    older emulator), as opposed to a refusal in its own ``{"ok": false}`` words."""

    def __init__(self, status: int, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.missing = missing


@dataclass
class WebChat:
    """The page server. ``emulator_url``: base URL of the emulator (its control API is under ``/_emu``)."""

    emulator_url: str
    host: str = "127.0.0.1"
    port: int = 0
    default_lang: str = "ko"
    users: set[int] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        assert self._runner is not None and self._runner.addresses, "start() first"
        port = self._runner.addresses[0][1]
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host  # an address a browser can open
        return f"http://{host}:{port}/"

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._asset)
        app.router.add_get("/api/texts", self._texts)
        app.router.add_post("/api/users", self._create_user)
        app.router.add_get("/api/feed/{user_id}", self._feed)
        app.router.add_post("/api/send", self._send)
        app.router.add_post("/api/tap", self._tap)
        app.router.add_post("/api/webapp", self._webapp)
        app.router.add_get("/api/files/{file_id}", self._file)
        return app

    async def start(self) -> str:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        self._site = site
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FEED_TIMEOUT_S + 10))
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # -- the emulator's control API --------------------------------------------------------

    async def _control(self, method: str, path: str, **kwargs: Any) -> Any:
        assert self._session is not None, "start() first"
        async with self._session.request(method, f"{self.emulator_url}/_emu{path}", **kwargs) as response:
            try:
                payload = await response.json(content_type=None)
            except ValueError:
                payload = None
        if not isinstance(payload, dict):
            raise ControlError(
                response.status if response.status >= 400 else 502,
                f"{method} /_emu{path}: not a control answer",
                missing=response.status == 404,
            )
        if not payload.get("ok"):
            raise ControlError(response.status if response.status >= 400 else 502, str(payload.get("error", "emulator error")))
        return payload["result"]

    # -- handlers ---------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        lang = normalize_locale(request.query.get("lang"), self.default_lang)
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        html = html.replace("{{lang}}", lang).replace("{{title}}", escape(texts(lang)["title"]))
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC / name).read_bytes(), content_type=ASSETS[name], headers={"Cache-Control": "no-store"})

    async def _texts(self, request: web.Request) -> web.StreamResponse:
        lang = normalize_locale(request.query.get("lang"), self.default_lang)
        return _json({"ok": True, "lang": lang, "langs": list(LOCALES), "texts": texts(lang)})

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="send a JSON object") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="send a JSON object")
        return body

    def _own_user(self, value: Any) -> int:
        try:
            user_id = int(value)
        except (TypeError, ValueError):
            raise web.HTTPBadRequest(text="user_id must be an integer") from None
        if user_id not in self.users:
            raise web.HTTPForbidden(text="this page did not create that user")
        return user_id

    async def _create_user(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        lang = normalize_locale(body.get("language_code"), self.default_lang)
        name = str(body.get("first_name") or texts(lang)["guest"]).strip()[:MAX_NAME] or texts(lang)["guest"]
        try:
            user = await self._control("POST", "/users", json={"first_name": name, "language_code": lang})
        except ControlError as err:
            return _error(err.status, str(err))
        self.users.add(int(user["id"]))
        return _json({"ok": True, "user": user})

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        user_id = self._own_user(request.match_info["user_id"])
        try:
            timeout = min(float(request.query.get("timeout", FEED_TIMEOUT_S)), FEED_TIMEOUT_S)
        except ValueError:
            return _error(400, "timeout must be a number of seconds")
        params: dict[str, str] = {"timeout": str(timeout)}
        if "after_version" in request.query:
            params["after_version"] = request.query["after_version"]
        try:
            feed = await self._control("GET", f"/feed/{user_id}", params=params)
        except ControlError as err:
            return _error(err.status, str(err))
        return _json({"ok": True, **feed})

    async def _send(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        user_id = self._own_user(body.get("user_id"))
        text = str(body.get("text") or "").strip()
        if not text or len(text) > MAX_TEXT:
            return _error(400, f"text must be 1-{MAX_TEXT} characters")
        try:
            message = await self._control("POST", "/send_text", json={"user_id": user_id, "text": text})
        except ControlError as err:
            return _error(err.status, str(err))
        return _json({"ok": True, "message": message})

    async def _tap(self, request: web.Request) -> web.StreamResponse:
        """Send the callback query of an inline button, then wait briefly for the bot's answer
        (its text is shown as a toast, as Telegram does)."""
        body = await self._body(request)
        user_id = self._own_user(body.get("user_id"))
        data = body.get("data")
        if not isinstance(data, str) or not data:
            return _error(400, "data (the button's callback_data) is required")
        try:
            tapped = await self._control("POST", "/tap", json={"user_id": user_id, "message_id": body.get("message_id"), "data": data})
            query_id = tapped["callback_query_id"]
            answer = None
            deadline = time.monotonic() + ANSWER_WAIT_S
            while answer is None and time.monotonic() < deadline:
                answer = await self._control("GET", f"/callback_answer/{query_id}")
                if answer is None:
                    await asyncio.sleep(0.05)
        except ControlError as err:
            return _error(err.status, str(err))
        return _json({"ok": True, "callback_query_id": query_id, "answer": answer})

    async def _webapp(self, request: web.Request) -> web.StreamResponse:
        """The address to open for a ``web_app`` button the user sees: only a button that is in
        the user's chat, on that message, can be opened (not any URL the page is handed)."""
        body = await self._body(request)
        user_id = self._own_user(body.get("user_id"))
        url = body.get("url")
        try:
            transcript = await self._control("GET", f"/transcript/{user_id}")
        except ControlError as err:
            return _error(err.status, str(err))
        message = next((m for m in transcript["messages"] if m["message_id"] == body.get("message_id") and not m["deleted"]), None)
        rows = ((message or {}).get("reply_markup") or {}).get("inline_keyboard", [])
        button = next((b for row in rows for b in row if (b.get("web_app") or {}).get("url") == url), None)
        if button is None:
            return _error(400, "no such web_app button on that message")
        try:
            opened = await self.launch_url(user_id, body["message_id"], str(url), str(button.get("text", "")))
        except ControlError as err:
            return _error(err.status, str(err))
        return _json({"ok": True, "url": opened})

    async def launch_url(self, user_id: int, message_id: int, url: str, text: str) -> str:
        """What a Telegram client opens for a ``web_app`` button: the button's URL with the
        launch data signed for the user in its fragment (``#tgWebAppData=...``), from the
        emulator's ``POST /_emu/web_app``, so the Mini App checks real launch data. An emulator
        without that endpoint gets the button's URL as it is."""
        try:
            opened = await self._control("POST", "/web_app", json={"user_id": user_id, "message_id": message_id, "text": text})
        except ControlError as err:
            if err.missing:
                return url
            raise
        return str(opened["url"])

    async def _file(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        file_id = request.match_info["file_id"]
        async with self._session.get(f"{self.emulator_url}/_emu/files/{file_id}") as response:
            body = await response.read()
            if response.status != 200:
                raise web.HTTPNotFound(text="no such file")
        kind = (
            "image/png" if body[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg" if body[:3] == b"\xff\xd8\xff" else "application/octet-stream"
        )
        # file ids name content: the same id is always the same bytes
        return web.Response(body=body, content_type=kind, headers={"Cache-Control": "max-age=86400, immutable"})


async def serve(emulator_url: str, host: str = "127.0.0.1", port: int = 0, default_lang: str = "ko") -> WebChat:
    """Start a page server for the emulator at ``emulator_url``; ``.url`` is the page."""
    chat = WebChat(emulator_url, host=host, port=port, default_lang=default_lang)
    await chat.start()
    return chat
