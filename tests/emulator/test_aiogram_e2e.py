"""A real aiogram bot talks to the emulator over HTTP, by polling and by webhook."""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.filters import CommandStart
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.emulator import Emulator, EmulatorServer

LABELS = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Cat", callback_data="t:l:1"), InlineKeyboardButton(text="Dog", callback_data="t:l:2")]]
)


def make_dispatcher(image: bytes) -> Dispatcher:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer(f"Welcome, <b>{html.escape(message.from_user.first_name)}</b>!")
        await message.answer_photo(BufferedInputFile(image, "task.png"), caption="<i>What is it?</i>", reply_markup=LABELS)

    @dp.callback_query(F.data.startswith("t:l:"))
    async def label(query: CallbackQuery) -> None:
        await query.answer("Saved")
        photo = query.message.photo[-1]
        file = await query.bot.get_file(photo.file_id)
        downloaded = await query.bot.download_file(file.file_path)
        await query.message.edit_media(
            InputMediaPhoto(media=photo.file_id, caption=f"Got {len(downloaded.read())} bytes; next task"), reply_markup=LABELS
        )

    return dp


@pytest.fixture
async def bot(server: EmulatorServer, token: str) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
    # DefaultBotProperties make aiogram send parse_mode and the deprecated disable_web_page_preview.
    client = Bot(token, session=session, default=DefaultBotProperties(parse_mode="HTML", link_preview_is_disabled=True))
    yield client
    await session.close()


async def test_dispatcher_polls_answers_start_and_labels(emu: Emulator, bot: Bot, make_image) -> None:
    dp = make_dispatcher(make_image(640, 480, "PNG"))
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5))
    try:
        user = emu.create_user(first_name="Min <3", language_code="ko")
        await emu.send_text(user.id, "/start")
        task = await emu.wait_for(lambda: (m := emu.last_message(user.id)) and m.photo_file_id and m, timeout=10)
        welcome = emu.transcript(user.id)[1]
        assert (welcome.text, welcome.entities) == ("Welcome, Min <3!", [{"type": "bold", "offset": 9, "length": 6}])
        assert (task.caption, task.button_texts) == ("What is it?", ["Cat", "Dog"])
        assert [(s["width"], s["height"]) for s in task.photo] == [(90, 68), (320, 240), (640, 480)]

        query_id = await emu.tap(user.id, task.message_id, text="Dog")
        edited = await emu.wait_for(lambda: (m := emu.last_message(user.id)) and m.edited and m, timeout=10)
        assert emu.callback_answer(query_id)["text"] == "Saved"
        assert edited.caption.startswith("Got ") and edited.caption.endswith("bytes; next task")
        assert edited.photo_file_id == task.photo_file_id  # same file_id, same photo
        assert edited.reply_markup == LABELS.model_dump(exclude_none=True)
        assert emu.stats.calls["getUpdates"] >= 2 and emu.stats.http_400 == 0
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 10)


async def test_aiogram_sees_telegram_errors(emu: Emulator, bot: Bot, user) -> None:
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(user.id, "x" * 5000)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(
            user.id, "x", reply_markup=InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="a", callback_data="d" * 65)]])
        )
    sent = await bot.send_message(user.id, "<b>hi</b>")
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("<b>hi</b>", chat_id=user.id, message_id=sent.message_id)
    emu.set_flood_control(True, per_chat_burst=1)
    await bot.send_message(user.id, "once")
    with pytest.raises(TelegramRetryAfter) as retry:
        await bot.send_message(user.id, "again")
    assert retry.value.retry_after == 1
    emu.block(user.id)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(user.id, "still there?")


async def test_aiogram_webhook_answering_with_a_method(emu: Emulator, bot: Bot, make_image) -> None:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message):  # returned method goes back in the webhook answer
        return message.answer(f"echo: {message.text}")

    app = web.Application()
    SimpleRequestHandler(dp, bot, secret_token="hook-secret", handle_in_background=False).register(app, path="/hook")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        await bot.set_webhook(f"http://127.0.0.1:{runner.addresses[0][1]}/hook", secret_token="hook-secret")
        user = emu.create_user(first_name="Web")
        await emu.send_text(user.id, "ping")
        reply = await emu.wait_for(lambda: emu.last_message(user.id), timeout=10)
        assert reply.text == "echo: ping"
        assert emu.stats.webhook_failures == 0
        await bot.delete_webhook()
    finally:
        await runner.cleanup()
