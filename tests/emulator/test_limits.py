"""The limits a bot meets in practice, enforced with Telegram's answers."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.emulator import EmulatedUser, Emulator


def refused(answer, description: str) -> bool:
    assert answer.payload == {"ok": False, "error_code": 400, "description": description}, answer.payload
    return answer.status == 400


def bilevel_png(width: int, height: int) -> bytes:
    """A large image that is cheap to encode."""
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def button(i: int) -> dict:
    return {"text": f"b{i}", "callback_data": f"d{i}"}


async def test_text_length_is_1_to_4096_utf16_units_after_parsing(api, user: EmulatedUser) -> None:
    assert (await api.json("sendMessage", chat_id=user.id, text="x" * 4096)).status == 200
    assert refused(await api.json("sendMessage", chat_id=user.id, text="x" * 4097), "Bad Request: message is too long")
    # An emoji is two UTF-16 code units, as Telegram counts.
    assert refused(await api.json("sendMessage", chat_id=user.id, text="😀" * 2049), "Bad Request: message is too long")
    # The limit applies after markup is parsed away.
    assert (await api.json("sendMessage", chat_id=user.id, text=f"<b>{'x' * 4096}</b>", parse_mode="HTML")).status == 200
    assert refused(await api.json("sendMessage", chat_id=user.id, text="  \n "), "Bad Request: message text is empty")
    assert refused(await api.json("sendMessage", chat_id=user.id, text="<b></b>", parse_mode="HTML"), "Bad Request: message text is empty")


async def test_caption_is_at_most_1024(api, user: EmulatedUser, make_image) -> None:
    photo = {"photo": ("p.jpg", make_image())}
    assert (await api.multipart("sendPhoto", photo, chat_id=user.id, caption="c" * 1024)).status == 200
    assert refused(await api.multipart("sendPhoto", photo, chat_id=user.id, caption="c" * 1025), "Bad Request: message caption is too long")


@pytest.mark.parametrize(("data", "ok"), [("a" * 64, True), ("é" * 32, True), ("a" * 65, False), ("é" * 33, False), ("", False)])
async def test_callback_data_is_1_to_64_bytes(api, user: EmulatedUser, data: str, ok: bool) -> None:
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": data}]]}
    answer = await api.json("sendMessage", chat_id=user.id, text="hi", reply_markup=markup)
    if ok:
        assert answer.status == 200
    else:
        assert refused(answer, "Bad Request: BUTTON_DATA_INVALID")


async def test_keyboard_size_limits(api, user: EmulatedUser) -> None:
    eight = {"inline_keyboard": [[button(i) for i in range(8)]]}
    nine = {"inline_keyboard": [[button(i) for i in range(9)]]}
    hundred = {"inline_keyboard": [[button(r * 5 + i) for i in range(5)] for r in range(20)]}
    too_many = {"inline_keyboard": [[button(r * 5 + i) for i in range(5)] for r in range(20)] + [[button(100)]]}
    assert (await api.json("sendMessage", chat_id=user.id, text="8", reply_markup=eight)).status == 200
    assert (await api.json("sendMessage", chat_id=user.id, text="100", reply_markup=hundred)).status == 200
    assert refused(
        await api.json("sendMessage", chat_id=user.id, text="9", reply_markup=nine),
        "Bad Request: reply markup is too long: at most 8 buttons per row",
    )
    assert refused(
        await api.json("sendMessage", chat_id=user.id, text="101", reply_markup=too_many),
        "Bad Request: reply markup is too long: at most 100 buttons",
    )
    assert refused(
        await api.json("sendMessage", chat_id=user.id, text="x", reply_markup={"inline_keyboard": [[{"text": "no action"}]]}),
        "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
    )


async def test_callback_query_answered_once_and_in_time(api, emu: Emulator, user: EmulatedUser, clock) -> None:
    sent = await api.json("sendMessage", chat_id=user.id, text="Pick", reply_markup={"inline_keyboard": [[button(1)]]})
    message_id = sent.result["message_id"]
    first = await emu.tap(user.id, message_id, text="b1")
    assert (await api.json("answerCallbackQuery", callback_query_id=first, text="Saved")).result is True
    assert emu.callback_answer(first) == {"text": "Saved", "show_alert": False, "url": None, "cache_time": 0}
    too_old = "Bad Request: query is too old and response timeout expired or query ID is invalid"
    assert refused(await api.json("answerCallbackQuery", callback_query_id=first), too_old)  # twice
    late = await emu.tap(user.id, message_id, data="d1")
    clock.advance(emu.callback_query_timeout + 1)
    assert refused(await api.json("answerCallbackQuery", callback_query_id=late), too_old)  # too late
    assert refused(await api.json("answerCallbackQuery", callback_query_id="12345"), too_old)  # unknown
    assert emu.callback_answer(late) is None


async def test_edits_of_missing_or_unchanged_messages(api, emu: Emulator, user: EmulatedUser) -> None:
    markup = {"inline_keyboard": [[button(1)]]}
    sent = (await api.json("sendMessage", chat_id=user.id, text="<b>Task</b>", parse_mode="HTML", reply_markup=markup)).result
    mid = sent["message_id"]
    not_modified = (
        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same "
        "as a current content and reply markup of the message"
    )
    same = await api.json("editMessageText", chat_id=user.id, message_id=mid, text="<b>Task</b>", parse_mode="HTML", reply_markup=markup)
    assert refused(same, not_modified)
    assert refused(await api.json("editMessageReplyMarkup", chat_id=user.id, message_id=mid, reply_markup=markup), not_modified)
    assert refused(await api.json("editMessageText", chat_id=user.id, message_id=9999, text="x"), "Bad Request: message to edit not found")
    # Same text without the bold entity is a change; leaving out reply_markup removes the keyboard.
    plain = await api.json("editMessageText", chat_id=user.id, message_id=mid, text="Task")
    assert plain.status == 200 and "reply_markup" not in plain.result
    edited = emu.transcript(user.id)[-1]
    assert (edited.text, edited.entities, edited.reply_markup, edited.edited) == ("Task", [], None, True)
    assert refused(
        await api.json("editMessageCaption", chat_id=user.id, message_id=mid, caption="c"),
        "Bad Request: there is no caption in the message to edit",
    )
    assert refused(await api.json("editMessageText", chat_id=user.id, message_id=1, text="x"), "Bad Request: message can't be edited")
    assert (await api.json("deleteMessage", chat_id=user.id, message_id=mid)).result is True
    assert refused(
        await api.json("editMessageText", chat_id=user.id, message_id=mid, text="again"), "Bad Request: message to edit not found"
    )
    assert refused(await api.json("deleteMessage", chat_id=user.id, message_id=mid), "Bad Request: message to delete not found")
    assert emu.transcript(user.id)[-1].deleted is True


async def test_photo_size_and_dimensions(api, user: EmulatedUser, make_image) -> None:
    big = make_image(16, 16, "BMP") + b"\0" * (10 * 1024 * 1024)
    assert refused(await api.multipart("sendPhoto", {"photo": ("big.bmp", big)}, chat_id=user.id), "Bad Request: PHOTO_SAVE_FILE_INVALID")
    wide = bilevel_png(9000, 1001)
    assert refused(await api.multipart("sendPhoto", {"photo": ("w.png", wide)}, chat_id=user.id), "Bad Request: PHOTO_INVALID_DIMENSIONS")
    assert refused(
        await api.multipart("sendPhoto", {"photo": ("x.jpg", b"not an image")}, chat_id=user.id), "Bad Request: IMAGE_PROCESS_FAILED"
    )
    fine = await api.multipart("sendPhoto", {"photo": ("ok.png", bilevel_png(3000, 2000))}, chat_id=user.id)
    assert fine.status == 200
    sizes = [(s["width"], s["height"]) for s in fine.result["photo"]]
    assert sizes == [(90, 60), (320, 213), (800, 533), (1280, 853), (2560, 1707)]  # Telegram's size boxes


async def test_markup_errors_in_parse_modes(api, user: EmulatedUser) -> None:
    assert refused(
        await api.json("sendMessage", chat_id=user.id, text="I <3 you", parse_mode="HTML"),
        'Bad Request: can\'t parse entities: Unsupported start tag "3" at byte offset 2',
    )
    assert refused(
        await api.json("sendMessage", chat_id=user.id, text="Done. 3 left", parse_mode="MarkdownV2"),
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'",
    )
    ok = await api.json("sendMessage", chat_id=user.id, text="*Done\\.* _3_ left", parse_mode="MarkdownV2")
    assert ok.result["text"] == "Done. 3 left"
    assert ok.result["entities"] == [{"type": "bold", "offset": 0, "length": 5}, {"type": "italic", "offset": 6, "length": 1}]
