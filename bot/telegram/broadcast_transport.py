"""The broadcast :class:`~bot.broadcast.transport.Transport` on aiogram: sends, and turns
aiogram's exceptions into the few cases delivery distinguishes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import FSInputFile, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.broadcast.transport import Button, Delivered, Fatal, Forbidden, Photo, RateLimited, SendFailed
from bot.telegram.buttons import NextCb

T = TypeVar("T")


def start_keyboard(button: Button | None) -> InlineKeyboardMarkup | None:
    if button is None:
        return None
    data = NextCb(project=button.project_id).pack()
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=button.text, callback_data=data)]])


async def translate_errors(call: Callable[[], Awaitable[T]]) -> T:
    """Run one Bot API call; every failure leaves as a domain exception."""
    try:
        return await call()
    except TelegramRetryAfter as exc:
        raise RateLimited(exc.retry_after, exc.message) from exc
    except TelegramForbiddenError as exc:
        raise Forbidden(exc.message) from exc
    except (TelegramUnauthorizedError, TelegramNotFound, TelegramConflictError) as exc:
        # wrong token / wrong API base / another instance: no recipient is at fault
        raise Fatal(f"{exc.__class__.__name__}: {exc.message}") from exc
    except TelegramBadRequest as exc:
        raise SendFailed(exc.message, retryable=False) from exc
    except TelegramServerError as exc:
        raise SendFailed(exc.message, retryable=True) from exc
    except TelegramNetworkError as exc:
        # the request may or may not have reached Telegram; retried (see docs/broadcast.md)
        raise SendFailed(f"network: {exc.message}", retryable=True) from exc
    except (TimeoutError, OSError) as exc:
        raise SendFailed(f"network: {exc.__class__.__name__}: {exc}", retryable=True) from exc
    except TelegramAPIError as exc:  # e.g. TelegramEntityTooLarge, migrate-to-chat
        raise SendFailed(exc.message, retryable=False) from exc


def _largest_file_id(message: Message) -> str | None:
    return message.photo[-1].file_id if message.photo else None


class AiogramTransport:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send_message(self, chat_id: int, text: str, button: Button | None) -> Delivered:
        message = await translate_errors(lambda: self.bot.send_message(chat_id, text, reply_markup=start_keyboard(button), parse_mode=None))
        return Delivered(message.message_id)

    async def send_photo(self, chat_id: int, photo: Photo, caption: str, button: Button | None) -> Delivered:
        if photo.file_id:
            media: str | FSInputFile = photo.file_id
        elif photo.path is not None:
            media = FSInputFile(photo.path)
        else:
            raise ValueError("a photo needs a file_id or a path")
        message = await translate_errors(
            lambda: self.bot.send_photo(chat_id, media, caption=caption, reply_markup=start_keyboard(button), parse_mode=None)
        )
        return Delivered(message.message_id, _largest_file_id(message))
