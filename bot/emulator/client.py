"""A small aiohttp client for the emulator's HTTP control API (``/_emu/``).

For processes other than the one running the emulator, e.g. a benchmark
driving a bot that runs separately. Method names and arguments follow
:class:`bot.emulator.Emulator`; every method is a coroutine here.

    async with EmulatorClient("http://127.0.0.1:8081") as emu:
        user = await emu.create_user(first_name="Min", language_code="ko")
        await emu.send_text(user.id, "/start")
        reply = await emu.wait_for_bot_message(user.id, after_message_id=0)
"""

from __future__ import annotations

import base64
from typing import Any

import aiohttp

from .errors import ButtonNotFound, EmulatorError
from .state import EmulatedUser, TranscriptMessage


class EmulatorClient:
    def __init__(self, base_url: str, *, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> EmulatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def _call(
        self,
        http_method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (params or {}).items() if v is not None}
        body = {k: v for k, v in (json or {}).items() if v is not None} if json is not None else None
        async with self._http().request(
            http_method, f"{self.base_url}/_emu{path}", json=body, params=query, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            if response.content_type != "application/json":
                if response.status >= 400:
                    raise EmulatorError(f"{http_method} {path}: HTTP {response.status}")
                return await response.read()
            payload = await response.json()
        if payload.get("ok"):
            return payload.get("result")
        error = payload.get("error", f"HTTP {response.status}")
        if response.status == 404:
            raise ButtonNotFound(error)
        if response.status == 408:
            raise TimeoutError(error)
        raise EmulatorError(error)

    # -- bots and users ----------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        return await self._call("GET", "/health")

    async def bots(self) -> list[dict[str, Any]]:
        return await self._call("GET", "/bots")

    async def add_bot(self, username: str = "crowdpin_bot", *, token: str | None = None, first_name: str | None = None) -> str:
        result = await self._call("POST", "/bots", json={"username": username, "token": token, "first_name": first_name})
        return result["token"]

    async def create_user(
        self,
        user_id: int | None = None,
        first_name: str = "Min",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "ko",
    ) -> EmulatedUser:
        data = await self._call(
            "POST",
            "/users",
            json={
                "user_id": user_id,
                "first_name": first_name,
                "last_name": last_name,
                "username": username,
                "language_code": language_code,
            },
        )
        return EmulatedUser(
            id=data["id"],
            first_name=data["first_name"],
            last_name=data.get("last_name"),
            username=data.get("username"),
            language_code=data.get("language_code"),
        )

    # -- what users do --------------------------------------------------------------------

    async def send_text(
        self, user_id: int, text: str, token: str | None = None, *, reply_to_message_id: int | None = None
    ) -> dict[str, Any]:
        return await self._call(
            "POST", "/send_text", json={"user_id": user_id, "text": text, "token": token, "reply_to_message_id": reply_to_message_id}
        )

    async def send_photo(self, user_id: int, data: bytes, caption: str | None = None, token: str | None = None) -> dict[str, Any]:
        payload = {"user_id": user_id, "data_base64": base64.b64encode(data).decode(), "caption": caption, "token": token}
        return await self._call("POST", "/send_photo", json=payload)

    async def tap(self, user_id: int, message_id: int, text: str | None = None, data: str | None = None, token: str | None = None) -> str:
        result = await self._call(
            "POST", "/tap", json={"user_id": user_id, "message_id": message_id, "text": text, "data": data, "token": token}
        )
        return result["callback_query_id"]

    async def open_web_app(
        self, user_id: int, message_id: int, text: str | None = None, token: str | None = None, *, auth_date: int | None = None
    ) -> dict[str, Any]:
        """The user taps a ``web_app`` button: ``{"url", "init_data", "query_id"}`` with launch
        data signed as Telegram signs it (see :meth:`bot.emulator.Emulator.open_web_app`)."""
        return await self._call(
            "POST",
            "/web_app",
            json={"user_id": user_id, "message_id": message_id, "text": text, "token": token, "auth_date": auth_date},
        )

    async def block(self, user_id: int, token: str | None = None) -> None:
        await self._call("POST", "/block", json={"user_id": user_id, "token": token})

    async def unblock(self, user_id: int, token: str | None = None) -> None:
        await self._call("POST", "/unblock", json={"user_id": user_id, "token": token})

    # -- what tests look at ---------------------------------------------------------------

    async def transcript(self, chat_id: int, token: str | None = None) -> list[TranscriptMessage]:
        result = await self._call("GET", f"/transcript/{chat_id}", params={"token": token})
        return [TranscriptMessage.from_dict(m) for m in result["messages"]]

    async def last_message(self, chat_id: int, from_bot: bool | None = True, token: str | None = None) -> TranscriptMessage | None:
        result = await self._call(
            "GET", f"/last_message/{chat_id}", params={"from_bot": "any" if from_bot is None else from_bot, "token": token}
        )
        return TranscriptMessage.from_dict(result) if result else None

    async def sent_messages(self, chat_id: int, token: str | None = None) -> list[TranscriptMessage]:
        return [m for m in await self.transcript(chat_id, token) if m.from_bot]

    async def chat_version(self, chat_id: int, token: str | None = None) -> int:
        return await self._call("GET", f"/version/{chat_id}", params={"token": token})

    async def callback_answer(self, callback_query_id: str) -> dict[str, Any] | None:
        return await self._call("GET", f"/callback_answer/{callback_query_id}")

    async def file_bytes(self, file_id: str) -> bytes:
        return await self._call("GET", f"/files/{file_id}")

    async def pending_updates(self, token: str | None = None) -> list[dict[str, Any]]:
        return await self._call("GET", "/updates", params={"token": token})

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "/stats")

    async def reset_stats(self) -> None:
        await self._call("POST", "/stats/reset")

    async def wait_for_bot_message(
        self,
        chat_id: int,
        after_message_id: int | None = None,
        *,
        after_version: int | None = None,
        timeout: float = 5.0,
        token: str | None = None,
    ) -> TranscriptMessage:
        """Long-poll for a bot message newer than ``after_message_id`` (or any change after ``after_version``)."""
        result = await self._call(
            "GET",
            "/wait",
            params={
                "chat_id": chat_id,
                "after_message_id": after_message_id,
                "after_version": after_version,
                "timeout": timeout,
                "token": token,
            },
            timeout=timeout + 10,
        )
        if result["timed_out"]:
            raise TimeoutError(f"no new bot message in chat {chat_id} within {timeout:g} s")
        return TranscriptMessage.from_dict(result["message"])

    # -- the network ------------------------------------------------------------------------

    async def set_flood_control(
        self, enabled: bool, per_chat_per_s: float = 1.0, global_per_s: float = 30.0, per_chat_burst: int | None = None
    ) -> None:
        await self._call(
            "POST",
            "/flood_control",
            json={"enabled": enabled, "per_chat_per_s": per_chat_per_s, "global_per_s": global_per_s, "per_chat_burst": per_chat_burst},
        )

    async def inject_fault(self, method: str | None, kind: str, count: int = 1, retry_after: int = 1, delay: float = 1.0) -> None:
        await self._call(
            "POST", "/fault", json={"method": method, "kind": kind, "count": count, "retry_after": retry_after, "delay": delay}
        )

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/fault")
