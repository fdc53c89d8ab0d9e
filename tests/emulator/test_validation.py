"""Every call is checked against the Bot API spec and refused the way Telegram refuses it."""

from __future__ import annotations

import pytest

from bot.emulator import EmulatedUser, Emulator

KEYBOARD = {"inline_keyboard": [[{"text": "Cat", "callback_data": "a:1"}]]}


def assert_bad_request(answer, description: str) -> None:
    assert answer.status == 400
    assert answer.payload == {"ok": False, "error_code": 400, "description": description}


async def test_valid_call_passes_in_every_encoding(api, user: EmulatedUser, emu: Emulator) -> None:
    by_json = await api.json("sendMessage", chat_id=user.id, text="json", reply_markup=KEYBOARD, disable_notification=True)
    by_form = await api.form("sendMessage", chat_id=user.id, text="form", reply_markup=KEYBOARD, disable_notification=True)
    by_query = await api.get("sendMessage", chat_id=user.id, text="query")
    by_multipart = await api.multipart("sendMessage", {}, chat_id=user.id, text="multipart")
    for answer in (by_json, by_form, by_query, by_multipart):
        assert answer.status == 200 and answer.payload["ok"] is True
    assert by_json.result["reply_markup"] == KEYBOARD
    assert by_form.result["chat"] == {"id": user.id, "type": "private", "first_name": "Min"}
    assert [m.text for m in emu.sent_messages(user.id)] == ["json", "form", "query", "multipart"]


async def test_unknown_method_is_404_and_bad_token_is_401(api) -> None:
    unknown = await api.json("sendTelepathy", chat_id=1)
    assert unknown.status == 404
    assert unknown.payload == {"ok": False, "error_code": 404, "description": "Not Found"}
    bad_token = await api.json("getMe", token="123456:AAnotARealTokenAtAllXXXXXXXXXXXXXXX")
    assert bad_token.status == 401
    assert bad_token.payload == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert (await api.json("GETME")).result["is_bot"] is True  # method names are case-insensitive


async def test_missing_required_parameter(api, user: EmulatedUser) -> None:
    assert_bad_request(await api.json("sendMessage", chat_id=user.id), "Bad Request: message text is empty")
    assert_bad_request(await api.json("sendMessage", text="hi"), "Bad Request: chat_id is empty")
    assert_bad_request(await api.json("getFile"), "Bad Request: file_id not specified")
    assert_bad_request(await api.json("deleteMessage", chat_id=user.id), "Bad Request: message identifier is not specified")


async def test_wrong_parameter_type(api, user: EmulatedUser) -> None:
    assert_bad_request(
        await api.json("sendMessage", chat_id=[user.id], text="hi"),
        'Bad Request: parameter "chat_id" must be of type Integer or String',
    )
    assert_bad_request(
        await api.form("deleteMessage", chat_id=user.id, message_id="first"),
        'Bad Request: parameter "message_id" must be of type Integer',
    )
    assert_bad_request(
        await api.form("sendMessage", chat_id=user.id, text="hi", disable_notification="sometimes"),
        'Bad Request: parameter "disable_notification" must be of type Boolean',
    )
    assert_bad_request(
        await api.form("sendMessage", chat_id=user.id, text="hi", reply_markup="{not json"),
        "Bad Request: can't parse reply keyboard markup JSON object",
    )


async def test_unknown_parameter(api, user: EmulatedUser) -> None:
    assert_bad_request(
        await api.json("sendMessage", chat_id=user.id, text="hi", colour="red"),
        'Bad Request: unknown parameter "colour" for method sendMessage',
    )
    # Deprecated parameters Telegram still honours (aiogram sends this one) are accepted.
    answer = await api.form("sendMessage", chat_id=user.id, text="hi", disable_web_page_preview=True)
    assert answer.status == 200


@pytest.mark.parametrize(
    ("markup", "description"),
    [
        (
            {"inline_keyboard": [[{"text": "Cat", "callback_data": "a", "colour": "red"}]]},
            'Bad Request: can\'t parse inline keyboard button: unknown field "colour" (at reply_markup.inline_keyboard[0][0].colour)',
        ),
        (
            {"inline_keyboard": [[{"callback_data": "a"}]]},
            "Bad Request: can't parse inline keyboard button: Can't find field \"text\" (at reply_markup.inline_keyboard[0][0])",
        ),
        (
            {"inline_keyboard": [[{"text": 5, "callback_data": "a"}]]},
            'Bad Request: can\'t parse inline keyboard button: Field "text" must be of type String (at reply_markup.inline_keyboard[0][0].text)',
        ),
        (
            {"inline_keyboard": {"text": "Cat"}},
            'Bad Request: can\'t parse inline keyboard: Field "inline_keyboard" must be of type Array (at reply_markup.inline_keyboard)',
        ),
    ],
)
async def test_nested_objects_are_validated_against_the_spec(api, user: EmulatedUser, markup, description) -> None:
    assert_bad_request(await api.json("sendMessage", chat_id=user.id, text="hi", reply_markup=markup), description)


async def test_union_members_are_told_apart_by_their_discriminator(api, user: EmulatedUser, make_image) -> None:
    media = [{"type": "photo", "media": "attach://a"}, {"type": "potato", "media": "attach://b"}]
    answer = await api.multipart(
        "sendMediaGroup", {"a": ("a.jpg", make_image()), "b": ("b.jpg", make_image(color="red"))}, chat_id=user.id, media=media
    )
    assert_bad_request(answer, 'Bad Request: can\'t parse InputMediaPhoto: Field "type" must be "photo" (at media[1].type)')
    scope = await api.json("setMyCommands", commands=[{"command": "start", "description": "Start"}], scope={"type": "chat"})
    assert_bad_request(scope, "Bad Request: can't parse BotCommandScopeChat: Can't find field \"chat_id\" (at scope)")


async def test_chat_that_does_not_exist(api, emu: Emulator) -> None:
    assert_bad_request(await api.json("sendMessage", chat_id=424242, text="hi"), "Bad Request: chat not found")
    assert_bad_request(await api.json("sendMessage", chat_id="@somebody", text="hi"), "Bad Request: chat not found")
