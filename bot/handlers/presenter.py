"""Turning a :class:`TaskCard` into a photo message, and showing it with as few calls as possible.

The task message is edited in place into the next task (``editMessageMedia``) so a phone chat
stays one message long. Images go up once: the phone copy is uploaded on first use and its
``file_id`` stored; later sends reuse it. Renderers are registered per project type so mask
tasks can draw overlays without this module knowing how.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery, EditMessageMedia
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InputMediaPhoto, Message

from bot.handlers import keyboards
from bot.i18n import t, won
from bot.tasks import media, service
from bot.tasks.models import TaskKind
from bot.tasks.service import TaskCard
from bot.telegram.runtime import App
from bot.telegram.session import call_json

log = structlog.get_logger("crowdpin.bot")


@dataclass(slots=True)
class Rendered:
    caption: str
    keyboard: keyboards.Keyboard
    file_id: str | None = None  # reuse an uploaded photo
    upload: bytes | None = None  # or upload these JPEG bytes
    cache_image_id: int | None = None  # store the uploaded file_id on this image
    on_file_id: Callable[[str], None] | None = None  # told the file_id of an uploaded photo


Renderer = Callable[[App, TaskCard, str], Awaitable[Rendered]]
RENDERERS: dict[str, Renderer] = {}


def renderer(project_type: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        RENDERERS[project_type] = fn
        return fn

    return register


def progress_line(card: TaskCard, lang: str) -> str:
    return t("task.progress", lang, done=card.done_today, earned=won(card.earned_today))


def caption(card: TaskCard, lang: str, *extra: str) -> str:
    lines = []
    if card.kind == TaskKind.TRAINING:
        lines.append(t("task.training", lang))
    lines.append(card.question)
    lines.extend(line for line in extra if line)
    lines.append(progress_line(card, lang))
    text = "\n".join(line for line in lines if line)
    return text[:1024]


async def phone_photo(app: App, card: TaskCard) -> tuple[str | None, bytes | None]:
    """The stored file_id, or the phone-sized JPEG bytes to upload (made once, off the loop)."""
    file_id = card.file_id or app.image_file_ids.get(card.image_id)
    if file_id:
        return file_id, None

    def load() -> bytes:
        path = card.phone_path
        if not path:
            path = str(
                media.ensure_phone_copy(card.image_path, card.image_sha256, app.media_dir, long_side=app.settings.media.phone_long_side)
            )
            app.db.call(service.remember_phone_path, card.image_id, path)
        with open(path, "rb") as fh:
            return fh.read()

    return None, await app.db.run_blocking(load)


@renderer("classify")
async def render_classify(app: App, card: TaskCard, lang: str) -> Rendered:
    file_id, upload = await phone_photo(app, card)
    return Rendered(
        caption=caption(card, lang),
        keyboard=keyboards.classify(card.labels, card.assignment_id, lang),
        file_id=file_id,
        upload=upload,
        cache_image_id=card.image_id if upload is not None else None,
    )


async def render(app: App, card: TaskCard, lang: str) -> Rendered:
    fn = RENDERERS.get(card.project_type)
    if fn is None:
        raise LookupError(f"no renderer for project type {card.project_type!r}")
    return await fn(app, card, lang)


def _upload_lock(app: App, image_id: int) -> asyncio.Lock:
    lock = app.upload_locks.get(image_id)
    if lock is None:
        lock = app.upload_locks[image_id] = asyncio.Lock()
    return lock


def _largest_file_id(message: Message | bool) -> str | None:
    if isinstance(message, Message) and message.photo:
        return message.photo[-1].file_id
    return None


async def show(bot: Bot, app: App, chat_id: int, card: TaskCard, lang: str, *, edit_message_id: int | None = None) -> int:
    """Show ``card``; edits ``edit_message_id`` in place when given. Returns the message id.

    The first send of a plain photo uploads it under a per-image lock, so workers who get the
    same image at the same moment wait for its file_id instead of uploading it again. Renders
    that upload something else (mask overlays) do not take the lock.
    """
    rendered = await render(app, card, lang)
    if rendered.cache_image_id is None:
        return await _show(bot, app, chat_id, card, rendered, edit_message_id)
    async with _upload_lock(app, rendered.cache_image_id):
        if card.image_id in app.image_file_ids:  # uploaded while we waited: send by file_id
            rendered = await render(app, card, lang)
        return await _show(bot, app, chat_id, card, rendered, edit_message_id)


async def _show(bot: Bot, app: App, chat_id: int, card: TaskCard, rendered: Rendered, edit_message_id: int | None) -> int:
    photo = rendered.file_id or BufferedInputFile(rendered.upload or b"", filename=f"task{card.task_id}.jpg")
    message: Message | bool | None = None
    if edit_message_id is not None:

        def edit() -> EditMessageMedia:
            media = InputMediaPhoto(media=photo, caption=rendered.caption)
            return EditMessageMedia(
                chat_id=chat_id, message_id=edit_message_id, media=media, reply_markup=keyboards.markup(rendered.keyboard)
            )

        try:
            if isinstance(photo, str):
                # Nothing to learn from the edited message (its id is known, no new file_id), and
                # this is the most common call of all: send it as plain JSON (see bot.telegram.session).
                payload = {
                    "chat_id": chat_id,
                    "message_id": edit_message_id,
                    "media": {"type": "photo", "media": photo, "caption": rendered.caption},
                    "reply_markup": keyboards.as_json(rendered.keyboard),
                }
                await call_json(bot, "editMessageMedia", payload, edit)
                return await _after_edit(app, card, chat_id, edit_message_id)
            message = await bot(edit())
        except TelegramBadRequest as exc:
            log.info("task.edit_fallback", error=exc.message, message_id=edit_message_id)
            message = None
            if rendered.upload is None and rendered.file_id is None:
                raise
            if isinstance(photo, BufferedInputFile):
                photo = BufferedInputFile(rendered.upload or b"", filename=photo.filename or f"task{card.task_id}.jpg")
    if message is None or message is True:
        message = await bot.send_photo(
            chat_id=chat_id, photo=photo, caption=rendered.caption, reply_markup=keyboards.markup(rendered.keyboard)
        )
    message_id = message.message_id if isinstance(message, Message) else edit_message_id
    assert message_id is not None
    new_file_id = _largest_file_id(message) if rendered.cache_image_id is not None else None
    if new_file_id and rendered.cache_image_id is not None:
        app.image_file_ids[rendered.cache_image_id] = new_file_id
    if rendered.on_file_id is not None and rendered.upload is not None and (uploaded := _largest_file_id(message)):
        rendered.on_file_id(uploaded)
    if new_file_id or card.message_id != message_id:
        await app.db.run(_after_show, card.assignment_id, chat_id, message_id, rendered.cache_image_id, new_file_id)
    return message_id


async def _after_edit(app: App, card: TaskCard, chat_id: int, message_id: int) -> int:
    if card.message_id != message_id:
        await app.db.run(_after_show, card.assignment_id, chat_id, message_id, None, None)
    return message_id


def _after_show(session, assignment_id: int, chat_id: int, message_id: int, image_id: int | None, file_id: str | None) -> None:
    service.attach_message(session, assignment_id, chat_id, message_id)
    if image_id is not None and file_id:
        service.remember_file_id(session, image_id, file_id)


async def answer_callback_soon(bot: Bot, query_id: str, text: str | None = None, show_alert: bool = False) -> None:
    """Fire-and-check: a slow callback answer must not delay the next task."""
    payload: dict[str, object] = {"callback_query_id": query_id}
    if text:
        payload.update(text=text, show_alert=show_alert)
    try:
        await call_json(
            bot, "answerCallbackQuery", payload, lambda: AnswerCallbackQuery(callback_query_id=query_id, text=text, show_alert=show_alert)
        )
    except Exception as exc:  # noqa: BLE001 - a lost spinner stop is not worth failing the update
        log.info("callback.answer_failed", error=str(exc))


def spawn(coro: Awaitable[object]) -> asyncio.Task[object]:
    return asyncio.ensure_future(coro)


def precise(app: App, card: TaskCard, lang: str) -> list[InlineKeyboardButton]:
    """The ✏️ Precise button (the Mini App on this assignment) when WEBAPP_URL is set."""
    base = app.settings.webapp.webapp_url
    if not base:
        return []
    return keyboards.precise(keyboards.precise_url(base, card.assignment_id), lang)
