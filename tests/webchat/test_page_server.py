"""The browser sandbox's page server (bot.webchat) over HTTP, against a real emulator and a
scripted bot: what the page may do, and the clear errors for what it may not."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote

import aiohttp
import pytest
from PIL import Image

from bot.emulator import Emulator, EmulatorServer
from bot.i18n import t
from bot.webchat import WebChat, serve


@dataclass
class Page:
    emu: Emulator
    server: EmulatorServer
    chat: WebChat
    http: aiohttp.ClientSession

    async def call(self, method: str, path: str, **kwargs) -> tuple[int, dict]:
        async with self.http.request(method, self.chat.url.rstrip("/") + path, **kwargs) as response:
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, {"text": await response.text()}

    async def bot(self, method: str, **params) -> dict:
        token = self.emu.default_token
        async with self.http.post(f"{self.server.base_url}/bot{token}/{method}", json=params) as response:
            payload = await response.json()
        assert payload["ok"], payload
        return payload["result"]


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    emu = Emulator()
    emu.add_bot("crowdpin_bot")
    server = EmulatorServer(emu, host="127.0.0.1", port=0)
    await server.start()
    chat = await serve(server.base_url)
    async with aiohttp.ClientSession() as http:
        yield Page(emu, server, chat, http)
    await chat.close()
    await server.stop()


async def test_the_page_and_its_assets_are_served_in_both_languages(page: Page) -> None:
    async with page.http.get(page.chat.url) as response:
        html = await response.text()
    assert response.status == 200 and '<html lang="ko">' in html and t("webchat.title", "ko") in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from the internet
    async with page.http.get(page.chat.url + "?lang=en") as response:
        assert t("webchat.title", "en") in await response.text()
    for name, kind in (("chat.js", "text/javascript"), ("chat.css", "text/css")):
        async with page.http.get(page.chat.url + "static/" + name) as response:
            assert (response.status, response.content_type) == (200, kind)
            assert "https://" not in await response.text()
    for bad in ("static/index.html.bak", "static/..%2Fserver.py", "static/server.py"):
        async with page.http.get(page.chat.url + bad) as response:
            assert response.status == 404, bad
    status, ko = await page.call("GET", "/api/texts")
    status_en, en = await page.call("GET", "/api/texts?lang=en")
    assert status == status_en == 200 and ko["lang"] == "ko" and en["lang"] == "en"
    assert set(ko["texts"]) == set(en["texts"]) and ko["texts"]["start"] != en["texts"]["start"]


async def test_a_page_user_chats_taps_and_sees_the_bots_answer(page: Page) -> None:
    status, created = await page.call("POST", "/api/users", json={"language_code": "en"})
    assert status == 200
    user = created["user"]
    assert (user["first_name"], user["language_code"]) == (t("webchat.guest", "en"), "en")

    status, _ = await page.call("POST", "/api/send", json={"user_id": user["id"], "text": "/start"})
    assert status == 200
    status, feed = await page.call("GET", f"/api/feed/{user['id']}?timeout=1")
    assert status == 200 and [(m["from_bot"], m["text"]) for m in feed["messages"]] == [(False, "/start")]

    # The bot sends a photo with buttons; the page sees it with the next long poll.
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 120, 40)).save(buffer, "JPEG")
    keyboard = {
        "inline_keyboard": [
            [{"text": "Cat", "callback_data": "l:1"}],
            [{"text": "✏️ Precise", "web_app": {"url": "http://127.0.0.1:9/app/"}}],
        ]
    }
    version = feed["version"]

    async def bot_sends() -> dict:
        await asyncio.sleep(0.1)
        form = aiohttp.FormData()
        form.add_field("chat_id", str(user["id"]))
        form.add_field("caption", "Which animal?")
        form.add_field("reply_markup", json.dumps(keyboard))
        form.add_field("photo", buffer.getvalue(), filename="a.jpg", content_type="image/jpeg")
        async with page.http.post(f"{page.server.base_url}/bot{page.emu.default_token}/sendPhoto", data=form) as response:
            return (await response.json())["result"]

    sending = asyncio.create_task(bot_sends())
    status, feed = await page.call("GET", f"/api/feed/{user['id']}?after_version={version}&timeout=5")
    sent = await sending
    assert status == 200 and not feed["timed_out"]
    photo = feed["messages"][-1]
    assert (photo["caption"], photo["reply_markup"]) == ("Which animal?", keyboard)
    async with page.http.get(page.chat.url + "api/files/" + photo["photo"][-1]["file_id"]) as response:
        assert (response.status, response.content_type) == (200, "image/jpeg")
        assert Image.open(io.BytesIO(await response.read())).size == (320, 240)

    # A tap is a callback query the bot receives; its answer comes back as the page's toast.
    async def bot_answers() -> None:
        query = await page.emu.wait_for(
            lambda: next((u["callback_query"] for u in page.emu.pending_updates() if "callback_query" in u), None), timeout=5
        )
        assert (query["data"], query["from"]["id"], query["message"]["message_id"]) == ("l:1", user["id"], sent["message_id"])
        await page.bot("answerCallbackQuery", callback_query_id=query["id"], text="Saved!")

    answering = asyncio.create_task(bot_answers())
    status, tapped = await page.call("POST", "/api/tap", json={"user_id": user["id"], "message_id": sent["message_id"], "data": "l:1"})
    await answering
    assert status == 200 and tapped["answer"]["text"] == "Saved!"

    # The web_app button opens only the URL that is on that message.
    web_app = {"user_id": user["id"], "message_id": sent["message_id"], "url": "http://127.0.0.1:9/app/"}
    status, opened = await page.call("POST", "/api/webapp", json=web_app)
    assert status == 200, opened
    page_url, _, launch = opened["url"].partition("#")
    assert page_url == "http://127.0.0.1:9/app/"
    if hasattr(page.emu, "open_web_app"):  # the emulator signs launch data (POST /_emu/web_app): the page gets it
        assert "tgWebAppData=" in launch and str(user["id"]) in unquote(unquote(launch))
    else:  # an emulator without Mini Apps: the button's URL as it is
        assert launch == ""
    status, refused = await page.call("POST", "/api/webapp", json={**web_app, "url": "http://evil.example/"})
    assert status == 400 and "no such web_app button" in refused["error"]


async def test_bad_and_foreign_requests_get_clear_errors_and_change_nothing(page: Page) -> None:
    status, created = await page.call("POST", "/api/users", json={"first_name": "Min"})
    assert status == 200 and created["user"]["language_code"] == "ko"
    mine = created["user"]["id"]
    stranger = page.emu.create_user(first_name="Not from the page").id
    version = page.emu.chat_version(stranger)

    # another user's chat: 403, whatever the action
    status, _ = await page.call("GET", f"/api/feed/{stranger}")
    assert status == 403
    status, _ = await page.call("POST", "/api/send", json={"user_id": stranger, "text": "hi"})
    assert status == 403
    status, _ = await page.call("POST", "/api/tap", json={"user_id": stranger, "message_id": 1, "data": "l:1"})
    assert status == 403
    assert page.emu.chat_version(stranger) == version and page.emu.pending_updates() == []

    # malformed input: 400 with the reason
    for path, body in (
        ("/api/send", {"user_id": mine, "text": "   "}),
        ("/api/send", {"user_id": "x", "text": "hi"}),
        ("/api/tap", {"user_id": mine, "message_id": 1}),
    ):
        status, answer = await page.call("POST", path, json=body)
        assert status == 400, (path, body, answer)
    status, _ = await page.call("POST", "/api/send", data="not json", headers={"Content-Type": "application/json"})
    assert status == 400
    # a button that is not there: the emulator's 404, passed on
    status, answer = await page.call("POST", "/api/tap", json={"user_id": mine, "message_id": 99, "data": "l:1"})
    assert status in (400, 404) and answer["ok"] is False
    for query in ("timeout=soon", "after_version=x&timeout=1"):
        status, answer = await page.call("GET", f"/api/feed/{mine}?{query}")
        assert status == 400 and answer["ok"] is False, (query, answer)
    status, _ = await page.call("GET", "/api/files/nope")
    assert status == 404
    assert page.emu.pending_updates() == []


async def test_a_busy_port_is_a_clear_message_not_a_traceback(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from bot.demo import run_web_demo

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = await run_web_demo(port=port, workdir=tmp_path / "w", tasks=1, mask_tasks=1)
    assert code == 2
    out = capsys.readouterr().out
    assert f"cannot serve the page on 127.0.0.1:{port}" in out and "--port 0" in out
