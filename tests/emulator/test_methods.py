"""Methods keep real state: transcripts, files, commands, several bots at once."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from bot.emulator import ButtonNotFound, EmulatedUser, Emulator


async def test_photos_get_stable_file_ids_and_can_be_downloaded(api, emu: Emulator, user: EmulatedUser, make_image) -> None:
    image = make_image(1000, 750)
    first = (await api.multipart("sendPhoto", {"photo": ("a.jpg", image)}, chat_id=user.id, caption="one")).result
    sizes = first["photo"]
    assert [(s["width"], s["height"]) for s in sizes] == [(90, 68), (320, 240), (800, 600), (1000, 750)]
    again = (await api.json("sendPhoto", chat_id=user.id, photo=sizes[0]["file_id"], caption="two")).result
    assert again["photo"] == sizes  # resent by the id of any size: the same photo, the same ids
    reupload = (await api.multipart("sendPhoto", {"photo": ("b.jpg", image)}, chat_id=user.id)).result
    assert reupload["photo"][-1]["file_id"] == sizes[-1]["file_id"]
    assert (emu.stats.uploads, emu.stats.unique_uploads) == (2, 1)  # the resend by file_id uploaded nothing
    file = (await api.json("getFile", file_id=sizes[-1]["file_id"])).result
    async with api.session.get(f"{api.base_url}/file/bot{api.token}/{file['file_path']}") as response:
        assert response.status == 200 and await response.read() == image  # a JPEG that needs no scaling is kept as is
    thumb = emu.file_bytes(sizes[0]["file_id"])
    assert thumb[:3] == b"\xff\xd8\xff"  # smaller sizes are JPEG renditions
    assert (await api.json("getFile", file_id="AgACnonsense")).description == "Bad Request: wrong file identifier/HTTP URL specified"
    url_photo = await api.json("sendPhoto", chat_id=user.id, photo="https://example.com/cat.jpg")
    assert url_photo.description == "Bad Request: failed to get HTTP URL content"


async def test_media_group_copy_and_caption_edits(api, emu: Emulator, user: EmulatedUser, make_image) -> None:
    media = [
        {"type": "photo", "media": "attach://p1", "caption": "<b>left</b>", "parse_mode": "HTML"},
        {"type": "photo", "media": "attach://p2"},
    ]
    files = {"p1": ("1.jpg", make_image(color="red")), "p2": ("2.jpg", make_image(color="blue"))}
    album = (await api.multipart("sendMediaGroup", files, chat_id=user.id, media=media)).result
    assert len(album) == 2 and album[0]["media_group_id"] == album[1]["media_group_id"]
    assert album[0]["caption_entities"] == [{"type": "bold", "offset": 0, "length": 4}]
    one = await api.json("sendMediaGroup", chat_id=user.id, media=[{"type": "photo", "media": album[0]["photo"][-1]["file_id"]}])
    assert one.description == "Bad Request: media group must contain 2-10 items, got 1"

    copied = (
        await api.json("copyMessage", chat_id=user.id, from_chat_id=user.id, message_id=album[1]["message_id"], caption="copy")
    ).result
    copy = emu.transcript(user.id)[-1]
    assert copy.message_id == copied["message_id"] and copy.caption == "copy"
    assert copy.photo_file_id == album[1]["photo"][-1]["file_id"]
    missing = await api.json("copyMessage", chat_id=user.id, from_chat_id=user.id, message_id=999)
    assert missing.description == "Bad Request: message to copy not found"

    edited = await api.json("editMessageCaption", chat_id=user.id, message_id=copy.message_id, caption="recaptioned")
    assert edited.result["caption"] == "recaptioned"
    swapped = await api.json(
        "editMessageMedia", chat_id=user.id, message_id=copy.message_id, media={"type": "photo", "media": album[0]["photo"][-1]["file_id"]}
    )
    assert swapped.status == 200 and "caption" not in swapped.result
    after = emu.transcript(user.id)[-1]
    assert (after.photo_file_id, after.caption, after.edit_count) == (album[0]["photo"][-1]["file_id"], None, 2)


async def test_commands_and_identity(api, emu: Emulator) -> None:
    me = (await api.json("getMe")).result
    assert me["is_bot"] is True and me["username"] == "crowdpin_bot" and me["id"] == emu.bot().id
    commands = [{"command": "start", "description": "Start"}, {"command": "help", "description": "Help"}]
    assert (await api.json("setMyCommands", commands=commands, language_code="ko")).result is True
    assert (await api.json("getMyCommands", language_code="ko")).result == commands
    assert (await api.json("getMyCommands")).result == []
    bad = await api.json("setMyCommands", commands=[{"command": "Start!", "description": "x"}])
    assert bad.description == "Bad Request: BOT_COMMAND_INVALID"


async def test_several_bots_are_served_at_once(api, emu: Emulator, make_image) -> None:
    other = emu.add_bot(username="helper_bot")
    person = emu.create_user(first_name="Both")
    await emu.send_text(person.id, "/start", token=other)
    assert (await api.json("sendMessage", chat_id=person.id, text="first bot")).description == "Bad Request: chat not found"
    sent = await api.json("sendMessage", token=other, chat_id=person.id, text="second bot")
    assert sent.result["from"]["username"] == "helper_bot"
    assert [m.text for m in emu.sent_messages(person.id, token=other)] == ["second bot"]
    assert emu.transcript(person.id) == []  # the first bot's chat with this person is empty
    updates = (await api.json("getUpdates", token=other)).result
    assert [u["message"]["text"] for u in updates] == ["/start"]
    assert (await api.json("getUpdates")).result == []


async def test_tap_refuses_buttons_that_are_not_there(api, emu: Emulator, user: EmulatedUser) -> None:
    keyboard = {"inline_keyboard": [[{"text": "Cat", "callback_data": "a:1"}, {"text": "Site", "url": "https://example.com"}]]}
    message_id = (await api.json("sendMessage", chat_id=user.id, text="Pick", reply_markup=keyboard)).result["message_id"]
    with pytest.raises(ButtonNotFound, match="the message has: 'Cat'->'a:1'"):
        await emu.tap(user.id, message_id, text="Dog")
    with pytest.raises(ButtonNotFound, match="has no callback_data"):
        await emu.tap(user.id, message_id, text="Site")
    query = await emu.tap(user.id, message_id, data="a:1")
    update = emu.pending_updates()[-1]["callback_query"]
    assert (update["id"], update["data"], update["message"]["message_id"]) == (query, "a:1", message_id)
    forged = await emu.send_callback_query(user.id, message_id, "a:999")  # what a modified client could send
    update = emu.pending_updates()[-1]["callback_query"]
    assert (update["id"], update["data"]) == (forged, "a:999")


async def test_webhook_delivers_chats_concurrently_but_each_chat_in_order(api, emu: Emulator) -> None:
    in_flight = 0
    peak = 0
    seen: dict[int, list[str]] = {}

    async def hook(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        body = await request.json()
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        message = body["message"]
        seen.setdefault(message["chat"]["id"], []).append(message["text"])
        in_flight -= 1
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        await api.json("setWebhook", url=f"http://127.0.0.1:{runner.addresses[0][1]}/hook", max_connections=3)
        people = [emu.create_user(first_name=f"P{i}") for i in range(6)]
        for round_ in range(3):
            for person in people:
                await emu.send_text(person.id, f"m{round_}")
        await emu.wait_for(lambda: sum(map(len, seen.values())) == 18, timeout=10)
        assert peak == 3  # bounded by max_connections, and actually concurrent
        assert all(texts == ["m0", "m1", "m2"] for texts in seen.values())
        assert emu.stats.updates_delivered == 18
    finally:
        await runner.cleanup()
