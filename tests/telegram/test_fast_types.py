"""The start-up patch of aiogram's types keeps their behaviour: each object knows its bot."""

from __future__ import annotations

from aiogram import Bot
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardButton, Update

from bot.telegram import fast_types


def _update() -> dict:
    return {
        "update_id": 1,
        "callback_query": {
            "id": "1",
            "from": {"id": 5, "is_bot": False, "first_name": "w"},
            "chat_instance": "ci",
            "data": "t:l:3:0",
            "message": {
                "message_id": 7,
                "date": 0,
                "chat": {"id": 5, "type": "private"},
                "photo": [{"file_id": "a", "file_unique_id": "u", "width": 9, "height": 9}],
                "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "t:l:3:0"}]]},
            },
        },
    }


async def test_parsed_objects_and_built_objects_know_their_bot() -> None:
    fast_types.install()
    bot = Bot("42:TEST")
    try:
        update = Update.model_validate(_update(), context={"bot": bot})
        query = update.callback_query
        assert query is not None and query.message is not None
        assert query.bot is bot
        assert query.from_user.bot is bot
        assert query.message.bot is bot  # type: ignore[union-attr]
        assert query.message.photo[0].bot is bot  # type: ignore[union-attr, index]
        assert query.message.reply_markup.inline_keyboard[0][0].bot is bot  # type: ignore[union-attr]
        # the bound shortcuts still work: the method object carries the bot
        answer = query.answer("ok")
        assert answer.bot is bot and answer.callback_query_id == "1"
        # objects built in code, or without a context, have no bot until bound
        button = InlineKeyboardButton(text="x", callback_data="y")
        assert button.bot is None
        assert SendMessage(chat_id=1, text="t").as_(bot).bot is bot
        assert Update.model_validate(_update()).callback_query.bot is None  # type: ignore[union-attr]
        # equality and copying behave as before
        assert update == Update.model_validate(_update(), context={"bot": bot})
        assert update.model_copy().callback_query.bot is bot  # type: ignore[union-attr]
    finally:
        await bot.session.close()


def test_install_patches_aiogram_types_once() -> None:
    fast_types.install()
    assert fast_types.install() == 0
