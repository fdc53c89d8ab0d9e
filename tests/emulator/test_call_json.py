"""The JSON fast path for hot Bot API calls (``bot.telegram.session.call_json``): the emulator
checks the body against the spec like any call, a success returns the raw result, and a failure
is still aiogram's exception (a 400 for the presenter's fallback, a 429 counted in metrics)."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import AnswerCallbackQuery, SendMessage

from bot.emulator import EmulatedUser, Emulator, EmulatorServer
from bot.telegram.metrics import Metrics
from bot.telegram.session import call_json, make_session


def _value(counter: object) -> float:
    return counter._value.get()  # type: ignore[attr-defined]


async def test_success_returns_the_raw_result_and_counts_a_sent_message(
    emu: Emulator, server: EmulatorServer, token: str, user: EmulatedUser
) -> None:
    metrics = Metrics()
    bot = Bot(token, session=make_session(server.base_url, metrics))
    try:
        payload = {
            "chat_id": user.id,
            "text": "안녕하세요",
            "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "t:l:1:0"}]]},
        }
        result = await call_json(bot, "sendMessage", payload, lambda: SendMessage(chat_id=user.id, text="x"))
    finally:
        await bot.session.close()
    assert isinstance(result, dict) and result["text"] == "안녕하세요"
    assert result["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "t:l:1:0"
    assert _value(metrics.sent) == 1


async def test_a_refused_call_raises_aiograms_exception(emu: Emulator, server: EmulatorServer, token: str, user: EmulatedUser) -> None:
    bot = Bot(token, session=make_session(server.base_url, Metrics()))
    try:
        with pytest.raises(TelegramBadRequest) as refused:  # no such message: the presenter then sends a new photo
            await call_json(
                bot,
                "editMessageMedia",
                {"chat_id": user.id, "message_id": 999_999, "media": {"type": "photo", "media": "AgAD-unknown"}},
                lambda: SendMessage(chat_id=user.id, text="x"),
            )
        assert "message" in refused.value.message.lower()
        with pytest.raises(TelegramBadRequest):  # a body the spec rejects (unknown query id type) is refused too
            await call_json(
                bot, "answerCallbackQuery", {"callback_query_id": {"not": "a string"}}, lambda: AnswerCallbackQuery(callback_query_id="1")
            )
    finally:
        await bot.session.close()


async def test_flood_control_raises_retry_after_and_is_counted(
    emu: Emulator, server: EmulatorServer, token: str, user: EmulatedUser
) -> None:
    metrics = Metrics()
    bot = Bot(token, session=make_session(server.base_url, metrics))
    emu.inject_fault("sendMessage", "429", retry_after=3)
    try:
        with pytest.raises(TelegramRetryAfter) as limited:
            await call_json(bot, "sendMessage", {"chat_id": user.id, "text": "hi"}, lambda: SendMessage(chat_id=user.id, text="hi"))
    finally:
        await bot.session.close()
    assert limited.value.retry_after == 3
    assert _value(metrics.http_429) == 1
    assert _value(metrics.sent) == 0
