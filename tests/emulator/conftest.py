"""Fixtures for the emulator's own tests: an emulator with one bot, served on a free port,
and a raw HTTP caller that sends Bot API calls in each of the encodings Telegram accepts."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.emulator import EmulatedUser, Emulator, EmulatorServer


class FakeClock:
    """A monotonic clock tests move by hand (flood windows, callback query ages)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Answer:
    status: int
    payload: dict[str, Any]

    @property
    def result(self) -> Any:
        assert self.payload.get("ok") is True, self.payload
        return self.payload["result"]

    @property
    def description(self) -> str:
        return self.payload.get("description", "")


class BotApi:
    """Calls the emulator's Bot API over HTTP as any client would."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.session = session
        self.base_url = base_url
        self.token = token

    def url(self, method: str, token: str | None = None) -> str:
        return f"{self.base_url}/bot{token or self.token}/{method}"

    async def json(self, method: str, token: str | None = None, **params: Any) -> Answer:
        async with self.session.post(self.url(method, token), json=params) as response:
            return Answer(response.status, await response.json(content_type=None))

    async def form(self, method: str, token: str | None = None, **params: Any) -> Answer:
        """urlencoded, objects JSON-serialised, like aiogram without files."""
        data = {
            k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in params.items()
        }
        async with self.session.post(self.url(method, token), data=data) as response:
            return Answer(response.status, await response.json(content_type=None))

    async def multipart(self, method: str, files: dict[str, tuple[str, bytes]], **params: Any) -> Answer:
        form = aiohttp.FormData()
        for key, value in params.items():
            form.add_field(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
        for key, (filename, content) in files.items():
            form.add_field(key, content, filename=filename, content_type="application/octet-stream")
        async with self.session.post(self.url(method), data=form) as response:
            return Answer(response.status, await response.json(content_type=None))

    async def get(self, method: str, **params: Any) -> Answer:
        async with self.session.get(self.url(method), params={k: str(v) for k, v in params.items()}) as response:
            return Answer(response.status, await response.json(content_type=None))


def image_bytes(width: int = 64, height: int = 48, fmt: str = "JPEG", color: str = "navy") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def make_image():
    """``make_image(width, height, fmt, color)`` -> encoded image bytes."""
    return image_bytes


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Emulator:
    emulator = Emulator(clock=clock, webhook_retry_delay=0.05, webhook_max_retry_delay=0.2)
    emulator.add_bot(username="crowdpin_bot")
    return emulator


@pytest.fixture
def token(emu: Emulator) -> str:
    return emu.default_token


@pytest.fixture
async def server(emu: Emulator) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(emu, host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture
async def api(server: EmulatorServer, token: str) -> AsyncIterator[BotApi]:
    async with aiohttp.ClientSession() as session:
        yield BotApi(session, server.base_url, token)


@pytest.fixture
async def user(emu: Emulator) -> EmulatedUser:
    """A user who has started the bot (so the bot may write to them)."""
    person = emu.create_user(first_name="Min", language_code="ko")
    await emu.send_text(person.id, "/start")
    return person
