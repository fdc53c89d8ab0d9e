"""The HTTP control API, driven through EmulatorClient as another process would."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.emulator import ButtonNotFound, Emulator, EmulatorServer
from bot.emulator.client import EmulatorClient


async def test_a_client_plays_a_user_against_a_bot(server: EmulatorServer, emu: Emulator, api) -> None:
    async with EmulatorClient(server.base_url) as client:
        assert (await client.health())["bot_api"] == emu.spec.version
        user = await client.create_user(first_name="Jun", language_code="en")
        assert emu.users[user.id].language_code == "en"
        await client.send_text(user.id, "/start")
        update = (await api.json("getUpdates")).result[0]
        assert update["message"]["text"] == "/start"

        # The bot answers a moment later; the client long-polls instead of busy waiting.
        keyboard = {"inline_keyboard": [[{"text": "Cat", "callback_data": "l:1"}, {"text": "Dog", "callback_data": "l:2"}]]}

        async def bot_answers() -> None:
            await asyncio.sleep(0.2)
            await api.json("sendMessage", chat_id=user.id, text="Which animal?", reply_markup=keyboard)

        answering = asyncio.create_task(bot_answers())
        started = time.perf_counter()
        task = await client.wait_for_bot_message(user.id, after_message_id=1, timeout=5)
        assert 0.15 < time.perf_counter() - started < 2
        await answering
        assert (task.text, task.button_texts) == ("Which animal?", ["Cat", "Dog"])

        query_id = await client.tap(user.id, task.message_id, text="Dog")
        query = (await api.json("getUpdates", offset=update["update_id"] + 1)).result[0]["callback_query"]
        assert (query["id"], query["data"]) == (query_id, "l:2")
        with pytest.raises(ButtonNotFound, match="no inline button with text='Bird'"):
            await client.tap(user.id, task.message_id, text="Bird")

        version = await client.chat_version(user.id)
        await api.json("answerCallbackQuery", callback_query_id=query_id, text="Thanks")
        await api.json("editMessageText", chat_id=user.id, message_id=task.message_id, text="Dog it is")
        edited = await client.wait_for_bot_message(user.id, after_version=version, timeout=5)
        assert (edited.text, edited.edited) == ("Dog it is", True)
        assert await client.callback_answer(query_id) == {"text": "Thanks", "show_alert": False, "url": None, "cache_time": 0}
        transcript = await client.transcript(user.id)
        assert [(m.from_bot, m.content) for m in transcript] == [(False, "/start"), (True, "Dog it is")]
        assert (await client.last_message(user.id, from_bot=False)).text == "/start"

        with pytest.raises(TimeoutError):
            await client.wait_for_bot_message(user.id, timeout=0.2)

        await client.block(user.id)
        assert (await api.json("sendMessage", chat_id=user.id, text="x")).status == 403
        await client.unblock(user.id)

        await client.set_flood_control(True, per_chat_per_s=1.0, per_chat_burst=1)
        assert (await api.json("sendMessage", chat_id=user.id, text="one")).status == 200
        assert (await api.json("sendMessage", chat_id=user.id, text="two")).status == 429
        await client.set_flood_control(False)
        await client.inject_fault("getMe", "500", count=2)
        assert [(await api.json("getMe")).status for _ in range(3)] == [500, 500, 200]

        stats = await client.stats()
        assert stats["http_429"] == 1 and stats["http_5xx"] == 2 and stats["sent_messages"][str(user.id)] == 2


async def test_client_reads_files_and_sends_photos(server: EmulatorServer, emu: Emulator, api, make_image) -> None:
    async with EmulatorClient(server.base_url) as client:
        user = await client.create_user(first_name="Pic")
        image = make_image(40, 30)
        sent = await client.send_photo(user.id, image, caption="my cat")
        assert sent["caption"] == "my cat" and sent["photo"][-1]["width"] == 40
        assert await client.file_bytes(sent["photo"][-1]["file_id"]) == image
        updates = await client.pending_updates()
        assert updates[-1]["message"]["photo"] == sent["photo"]


async def test_the_feed_long_polls_a_whole_chat_and_shows_edits_in_place(server: EmulatorServer, emu: Emulator, api) -> None:
    import aiohttp

    user = emu.create_user(first_name="Feed", language_code="ko")
    feed_url = f"{server.base_url}/_emu/feed/{user.id}"
    async with aiohttp.ClientSession() as http:
        async with http.get(feed_url) as response:
            empty = (await response.json())["result"]
        assert empty == {"version": 0, "messages": [], "timed_out": False}

        await emu.send_text(user.id, "/start")
        keyboard = {"inline_keyboard": [[{"text": "Cat", "callback_data": "l:1"}]]}
        sent = (await api.json("sendMessage", chat_id=user.id, text="Which animal?", reply_markup=keyboard)).result
        async with http.get(feed_url) as response:
            now = (await response.json())["result"]
        assert [(m["from_bot"], m["text"]) for m in now["messages"]] == [(False, "/start"), (True, "Which animal?")]
        assert now["messages"][1]["reply_markup"] == keyboard

        # Nothing changes: the long poll ends by its timeout and says so.
        started = time.perf_counter()
        async with http.get(feed_url, params={"after_version": now["version"], "timeout": "0.3"}) as response:
            idle = (await response.json())["result"]
        assert idle["timed_out"] is True and idle["version"] == now["version"]
        assert 0.25 < time.perf_counter() - started < 3

        # An edit wakes the poll; the message keeps its id and counts the edit.
        async def edit_later() -> None:
            await asyncio.sleep(0.2)
            await api.json("editMessageText", chat_id=user.id, message_id=sent["message_id"], text="Dog it is")

        editing = asyncio.create_task(edit_later())
        async with http.get(feed_url, params={"after_version": now["version"], "timeout": "5"}) as response:
            changed = (await response.json())["result"]
        await editing
        assert changed["timed_out"] is False and changed["version"] > now["version"]
        last = changed["messages"][-1]
        assert (last["message_id"], last["text"], last["edit_count"], last["reply_markup"]) == (sent["message_id"], "Dog it is", 1, None)

        async with http.get(feed_url, params={"limit": "1"}) as response:
            assert [m["text"] for m in (await response.json())["result"]["messages"]] == ["Dog it is"]
        for params, status in (({"limit": "0"}, 400), ({"after_version": "x"}, 400), ({"token": "1:nope"}, 400)):
            async with http.get(feed_url, params=params) as response:
                assert response.status == status, params
                assert (await response.json())["ok"] is False
