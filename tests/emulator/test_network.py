"""Users and the network: blocking, flood control, faults, long polling and webhooks."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from bot.emulator import EmulatedUser, Emulator, EmulatorServer

BLOCKED = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}


async def test_blocked_user_gives_403_on_every_call_to_the_chat(api, emu: Emulator, user: EmulatedUser) -> None:
    sent = (
        await api.json(
            "sendMessage", chat_id=user.id, text="Task", reply_markup={"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        )
    ).result
    emu.block(user.id)
    for method, params in [
        ("sendMessage", {"text": "hello?"}),
        ("editMessageText", {"message_id": sent["message_id"], "text": "edited"}),
        ("deleteMessage", {"message_id": sent["message_id"]}),
        ("sendChatAction", {"action": "typing"}),
    ]:
        answer = await api.json(method, chat_id=user.id, **params)
        assert (answer.status, answer.payload) == (403, BLOCKED), method
    assert emu.stats.http_403 == 4
    kicked = emu.pending_updates()[-1]["my_chat_member"]  # Telegram tells the bot, too
    assert kicked["new_chat_member"]["status"] == "kicked"
    emu.unblock(user.id)
    assert (await api.json("sendMessage", chat_id=user.id, text="welcome back")).status == 200
    # A user who never wrote to the bot cannot be written to.
    stranger = emu.create_user(first_name="Stranger")
    emu.block(stranger.id)
    assert (await api.json("sendMessage", chat_id=stranger.id, text="hi")).status == 403


async def test_flood_control_answers_429_with_retry_after(api, emu: Emulator, clock) -> None:
    users = [emu.create_user(first_name=f"U{i}") for i in range(40)]
    for person in users:
        await emu.send_text(person.id, "/start")
    emu.set_flood_control(True, per_chat_per_s=1.0, global_per_s=30.0)
    # Per chat: a short burst passes, then Telegram asks to wait.
    for i in range(3):
        assert (await api.json("sendMessage", chat_id=users[0].id, text=f"burst {i}")).status == 200
    limited = await api.json("sendMessage", chat_id=users[0].id, text="one too many")
    assert limited.status == 429
    assert limited.payload == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    # Edits and callback answers are not limited.
    assert (await api.json("editMessageText", chat_id=users[0].id, message_id=2, text="edited")).status == 200
    clock.advance(1.0)
    assert (await api.json("sendMessage", chat_id=users[0].id, text="after waiting")).status == 200
    # Globally: about 30 per second to different chats.
    clock.advance(5.0)
    statuses = [(await api.json("sendMessage", chat_id=p.id, text="broadcast")).status for p in users[1:]]
    assert statuses.count(200) == 30 and statuses[30:] == [429] * 9
    assert emu.stats.http_429 == 10
    emu.set_flood_control(False)
    assert (await api.json("sendMessage", chat_id=users[-1].id, text="unlimited")).status == 200


async def test_injected_faults(api, emu: Emulator, server: EmulatorServer, user: EmulatedUser) -> None:
    emu.inject_fault("sendMessage", "429", retry_after=7)
    emu.inject_fault("sendMessage", "500")
    emu.inject_fault("sendMessage", "502")
    emu.inject_fault(None, "slow", delay=0.3)
    rate_limited = await api.json("sendMessage", chat_id=user.id, text="1")
    assert (rate_limited.status, rate_limited.payload["parameters"]) == (429, {"retry_after": 7})
    server_error = await api.json("sendMessage", chat_id=user.id, text="2")
    assert (server_error.status, server_error.description) == (500, "Internal Server Error")
    async with aiohttp.ClientSession() as session:
        async with session.post(api.url("sendMessage"), json={"chat_id": user.id, "text": "3"}) as response:
            assert response.status == 502 and "502 Bad Gateway" in await response.text()  # nginx's HTML, not JSON
    started = time.perf_counter()
    assert (await api.json("getMe")).status == 200
    assert time.perf_counter() - started >= 0.3
    assert emu.sent_messages(user.id) == []  # none of the failed calls was executed

    emu.inject_fault("sendMessage", "drop")
    with pytest.raises(aiohttp.ClientError):
        await api.json("sendMessage", chat_id=user.id, text="lost before")
    assert emu.sent_messages(user.id) == []
    emu.inject_fault("sendMessage", "drop_after")
    with pytest.raises(aiohttp.ClientError):
        await api.json("sendMessage", chat_id=user.id, text="lost after")
    assert [m.text for m in emu.sent_messages(user.id)] == ["lost after"]  # executed, answer lost
    assert emu.stats.faults_injected == 6


async def test_long_poll_wakes_up_as_soon_as_an_update_arrives(api, emu: Emulator) -> None:
    person = emu.create_user(first_name="Ada")
    poll = asyncio.create_task(api.json("getUpdates", timeout=10))
    await asyncio.sleep(0.1)
    assert not poll.done()
    started = time.perf_counter()
    await emu.send_text(person.id, "/start deep-link")
    updates = (await poll).result
    assert time.perf_counter() - started < 0.5
    message = updates[0]["message"]
    assert message["text"] == "/start deep-link"
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert message["from"]["language_code"] == "ko"
    # offset confirms; limit bounds; allowed_updates filters what gets queued next.
    await emu.send_text(person.id, "two")
    await emu.send_text(person.id, "three")
    offset = updates[0]["update_id"] + 1
    batch = (await api.json("getUpdates", offset=offset, limit=1)).result
    assert [u["message"]["text"] for u in batch] == ["two"]
    rest = (await api.json("getUpdates", offset=batch[0]["update_id"] + 1, allowed_updates=["callback_query"])).result
    assert [u["message"]["text"] for u in rest] == ["three"]
    await emu.send_text(person.id, "filtered out")
    assert (await api.json("getUpdates", offset=rest[0]["update_id"] + 1)).result == []


async def test_second_poller_terminates_the_first_with_409(api) -> None:
    first = asyncio.create_task(api.json("getUpdates", timeout=10))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(api.json("getUpdates", timeout=0))
    conflict = await asyncio.wait_for(first, 2)
    assert conflict.status == 409
    assert conflict.description.startswith("Conflict: terminated by other getUpdates request")
    assert (await second).result == []


async def test_webhook_delivery_carries_the_secret_and_is_retried(api, emu: Emulator) -> None:
    received: list[tuple[str | None, dict]] = []
    failures_left = 2

    async def hook(request: web.Request) -> web.Response:
        nonlocal failures_left
        body = await request.json()
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), body))
        if failures_left:
            failures_left -= 1
            return web.Response(status=500)
        if body.get("message", {}).get("text") == "reply in the answer":
            # A bot may answer the delivery with a method call.
            return web.json_response({"method": "sendMessage", "chat_id": body["message"]["chat"]["id"], "text": "answered inline"})
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        assert (await api.json("setWebhook", url=url, secret_token="s3cr3t-Token_1")).result is True
        conflict = await api.json("getUpdates")
        assert conflict.status == 409 and "webhook is active" in conflict.description
        person = emu.create_user(first_name="Hook")
        for text in ("first", "second", "reply in the answer"):
            await emu.send_text(person.id, text)
        await emu.wait_for(lambda: len(list(emu.sent_messages(person.id))) == 1, timeout=5)
        assert {secret for secret, _ in received} == {"s3cr3t-Token_1"}
        texts = [body["message"]["text"] for _, body in received]
        assert texts == ["first", "first", "first", "second", "reply in the answer"]  # retried, then in order
        assert emu.sent_messages(person.id)[0].text == "answered inline"
        info = (await api.json("getWebhookInfo")).result
        assert info["url"] == url and info["pending_update_count"] == 0
        assert info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
        assert emu.stats.webhook_failures == 2
        assert (await api.json("deleteWebhook")).result is True
        assert (await api.json("getWebhookInfo")).result["url"] == ""
    finally:
        await runner.cleanup()


async def test_webhook_updates_wait_while_the_hook_is_down_and_go_back_to_polling(api, emu: Emulator) -> None:
    assert (await api.json("setWebhook", url="http://127.0.0.1:9/unreachable")).result is True
    person = emu.create_user(first_name="Queue")
    await emu.send_text(person.id, "are you there?")
    await emu.wait_for(lambda: emu.stats.webhook_failures >= 2, timeout=5)
    info = (await api.json("getWebhookInfo")).result
    assert info["pending_update_count"] == 1 and info["last_error_message"] == "Connection refused"
    assert (await api.json("deleteWebhook")).result is True
    await emu.wait_for(lambda: not emu.bot().webhook_inflight, timeout=2)
    updates = (await api.json("getUpdates")).result
    assert [u["message"]["text"] for u in updates] == ["are you there?"]


async def test_webhook_survives_being_reset_while_a_delivery_is_failing(api, emu: Emulator, token: str) -> None:
    attempts: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        attempts.append((await request.json())["message"]["text"])
        return web.Response(status=502 if len(attempts) <= 2 else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        await emu.call(token, "setWebhook", {"url": url})
        person = emu.create_user(first_name="Reset")
        await emu.send_text(person.id, "a")
        await emu.send_text(person.id, "b")
        await emu.wait_for(lambda: len(attempts) >= 1, timeout=5)
        # aiogram apps often delete and set the webhook again on start-up
        await emu.call(token, "deleteWebhook")
        await emu.call(token, "setWebhook", {"url": url})
        await emu.wait_for(lambda: attempts[-2:] == ["a", "b"] and emu.pending_updates() == [], timeout=5)
        assert attempts[0] == "a" and attempts.count("b") == 1
    finally:
        await runner.cleanup()
