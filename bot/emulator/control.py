"""The HTTP control API under ``/_emu/``: the Python API for other processes.

A benchmark that runs the bot in a separate process plays its users through
these endpoints (or :class:`bot.emulator.client.EmulatorClient`). Arguments
come as a JSON body or as query/form parameters; answers are
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.
``GET /_emu/wait`` long-polls for the bot's next message in a chat, so a
client can measure "tap to next task shown" without busy polling. ``GET /_emu/feed/<chat>``
long-polls a whole chat for a client that draws it (the browser sandbox, ``bot.webchat``).
"""

from __future__ import annotations

import base64
import builtins
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import ButtonNotFound, EmulatorError
from .http_body import read_request
from .state import TranscriptMessage

if TYPE_CHECKING:
    from .emulator import Emulator

PREFIX = "/_emu"
MAX_WAIT_S = 300.0


def _ok(result: Any) -> web.Response:
    return web.Response(text=json.dumps({"ok": True, "result": result}, ensure_ascii=False), content_type="application/json")


def _fail(status: int, error: str) -> web.Response:
    return web.Response(text=json.dumps({"ok": False, "error": error}), status=status, content_type="application/json")


def _message(message: TranscriptMessage | None) -> dict[str, Any] | None:
    return message.to_dict() if message is not None else None


class _Args:
    """Typed access to a control call's arguments (query, form or JSON body)."""

    def __init__(self, values: dict[str, Any], match: dict[str, str]) -> None:
        self.values = {**values, **match}

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None or value == "" else value

    def int(self, name: str) -> int:
        value = self.get(name)
        if value is None:
            raise EmulatorError(f"missing argument {name!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise EmulatorError(f"argument {name!r} must be an integer") from None

    def opt_int(self, name: str) -> builtins.int | None:
        return None if self.get(name) is None else self.int(name)

    def float(self, name: str, default: float) -> float:
        value = self.get(name)
        try:
            return default if value is None else float(value)
        except (TypeError, ValueError):
            raise EmulatorError(f"argument {name!r} must be a number") from None

    def bool(self, name: str, default: bool | None = False) -> bool | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text == "any":
            return None
        return text in ("1", "true", "yes", "on")


Handler = Callable[["Emulator", _Args], Awaitable[Any]]


def _route(emulator: Emulator, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            params, files = await read_request(request)
            args = _Args(params, dict(request.match_info))
            args.values.update({f"file:{name}": upload for name, upload in files.items()})
            result = await handler(emulator, args)
        except ButtonNotFound as err:
            return _fail(404, str(err))
        except (EmulatorError, ValueError, KeyError) as err:
            return _fail(400, str(err))
        except TimeoutError as err:
            return _fail(408, str(err))
        if isinstance(result, web.StreamResponse):
            return result
        return _ok(result)

    return handle


# -- handlers ----------------------------------------------------------------------------


async def _health(emu: Emulator, args: _Args) -> Any:
    return {"bots": len(emu.bots), "users": len(emu.users), "bot_api": emu.spec.version}


async def _bots(emu: Emulator, args: _Args) -> Any:
    return [{"token": bot.token, **bot.account.to_api()} for bot in emu.bots.values()]


async def _add_bot(emu: Emulator, args: _Args) -> Any:
    token = emu.add_bot(args.get("username", "crowdpin_bot"), token=args.get("token"), first_name=args.get("first_name"))
    return {"token": token, **emu.bot(token).account.to_api()}


async def _create_user(emu: Emulator, args: _Args) -> Any:
    user = emu.create_user(
        user_id=args.opt_int("user_id"),
        first_name=args.get("first_name", "Min"),
        last_name=args.get("last_name"),
        username=args.get("username"),
        language_code=args.get("language_code", "ko"),
    )
    return user.to_api()


async def _send_text(emu: Emulator, args: _Args) -> Any:
    return await emu.send_text(
        args.int("user_id"), args.get("text", ""), args.get("token"), reply_to_message_id=args.opt_int("reply_to_message_id")
    )


async def _send_photo(emu: Emulator, args: _Args) -> Any:
    upload = args.get("file:photo")
    if upload is not None:
        data = upload.content
    elif args.get("data_base64"):
        data = base64.b64decode(args.get("data_base64"))
    else:
        raise EmulatorError("send the image as a 'photo' file part or as 'data_base64'")
    return await emu.send_photo(args.int("user_id"), data, args.get("caption"), args.get("token"))


async def _tap(emu: Emulator, args: _Args) -> Any:
    query_id = await emu.tap(
        args.int("user_id"), args.int("message_id"), text=args.get("text"), data=args.get("data"), token=args.get("token")
    )
    return {"callback_query_id": query_id}


async def _web_app(emu: Emulator, args: _Args) -> Any:
    auth_date = args.opt_int("auth_date")
    return emu.open_web_app(
        args.int("user_id"), args.int("message_id"), text=args.get("text"), token=args.get("token"), auth_date=auth_date
    )


async def _block(emu: Emulator, args: _Args) -> Any:
    emu.block(args.int("user_id"), args.get("token"))
    return True


async def _unblock(emu: Emulator, args: _Args) -> Any:
    emu.unblock(args.int("user_id"), args.get("token"))
    return True


async def _transcript(emu: Emulator, args: _Args) -> Any:
    chat_id, token = args.int("chat_id"), args.get("token")
    return {
        "messages": [m.to_dict() for m in emu.transcript(chat_id, token)],
        "version": emu.chat_version(chat_id, token),
    }


async def _last_message(emu: Emulator, args: _Args) -> Any:
    return _message(emu.last_message(args.int("chat_id"), args.bool("from_bot", True), args.get("token")))


async def _version(emu: Emulator, args: _Args) -> Any:
    return emu.chat_version(args.int("chat_id"), args.get("token"))


async def _callback_answer(emu: Emulator, args: _Args) -> Any:
    return emu.callback_answer(str(args.get("query_id")))


async def _stats(emu: Emulator, args: _Args) -> Any:
    return emu.stats.to_dict()


async def _reset_stats(emu: Emulator, args: _Args) -> Any:
    emu.stats.reset()
    return True


async def _flood_control(emu: Emulator, args: _Args) -> Any:
    burst = args.opt_int("per_chat_burst")
    emu.set_flood_control(bool(args.bool("enabled", True)), args.float("per_chat_per_s", 1.0), args.float("global_per_s", 30.0), burst)
    return True


async def _inject_fault(emu: Emulator, args: _Args) -> Any:
    fault = emu.inject_fault(
        args.get("method"),
        str(args.get("kind", "")),
        count=args.opt_int("count") or 1,
        retry_after=args.opt_int("retry_after") or 1,
        delay=args.float("delay", 1.0),
    )
    return {"method": fault.method, "kind": fault.kind, "count": fault.remaining}


async def _clear_faults(emu: Emulator, args: _Args) -> Any:
    emu.clear_faults()
    return True


async def _wait(emu: Emulator, args: _Args) -> Any:
    chat_id, token = args.int("chat_id"), args.get("token")
    timeout = min(args.float("timeout", 10.0), MAX_WAIT_S)
    try:
        message = await emu.wait_for_bot_message(
            chat_id,
            args.opt_int("after_message_id"),
            after_version=args.opt_int("after_version"),
            timeout=timeout,
            token=token,
        )
    except TimeoutError:
        return {"message": None, "version": emu.chat_version(chat_id, token), "timed_out": True}
    return {"message": _message(message), "version": emu.chat_version(chat_id, token), "timed_out": False}


async def _feed(emu: Emulator, args: _Args) -> Any:
    """A chat as a client draws it: every message (edits applied, deletions marked, user
    messages too) and the chat version, long-polled: with ``after_version`` it answers as soon
    as the chat changes after that version (or with ``timed_out`` after ``timeout``)."""
    chat_id, token = args.int("chat_id"), args.get("token")
    after = args.opt_int("after_version")
    timeout = min(args.float("timeout", 25.0), MAX_WAIT_S)
    limit = args.opt_int("limit")
    if limit is not None and limit < 1:
        raise EmulatorError("argument 'limit' must be at least 1")
    emu.bot(token)  # an unknown token is an error, not an empty chat
    timed_out = False
    if after is not None and emu.chat_version(chat_id, token) <= after:
        try:
            await emu.wait_for(lambda: emu.chat_version(chat_id, token) > after, timeout=timeout)
        except TimeoutError:
            timed_out = True
    messages = emu.transcript(chat_id, token)
    if limit is not None:
        messages = messages[-limit:]
    return {"version": emu.chat_version(chat_id, token), "messages": [m.to_dict() for m in messages], "timed_out": timed_out}


async def _file(emu: Emulator, args: _Args) -> Any:
    return web.Response(body=emu.file_bytes(str(args.get("file_id"))), content_type="application/octet-stream")


async def _updates(emu: Emulator, args: _Args) -> Any:
    return emu.pending_updates(args.get("token"))


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/health", _health),
    ("GET", "/bots", _bots),
    ("POST", "/bots", _add_bot),
    ("POST", "/users", _create_user),
    ("POST", "/send_text", _send_text),
    ("POST", "/send_photo", _send_photo),
    ("POST", "/tap", _tap),
    ("POST", "/web_app", _web_app),
    ("POST", "/block", _block),
    ("POST", "/unblock", _unblock),
    ("GET", "/transcript/{chat_id}", _transcript),
    ("GET", "/last_message/{chat_id}", _last_message),
    ("GET", "/version/{chat_id}", _version),
    ("GET", "/callback_answer/{query_id}", _callback_answer),
    ("GET", "/stats", _stats),
    ("POST", "/stats/reset", _reset_stats),
    ("POST", "/flood_control", _flood_control),
    ("POST", "/fault", _inject_fault),
    ("DELETE", "/fault", _clear_faults),
    ("GET", "/wait", _wait),
    ("GET", "/feed/{chat_id}", _feed),
    ("GET", "/files/{file_id}", _file),
    ("GET", "/updates", _updates),
]


def add_control_routes(app: web.Application, emulator: Emulator) -> None:
    for http_method, path, handler in ROUTES:
        app.router.add_route(http_method, PREFIX + path, _route(emulator, handler))
