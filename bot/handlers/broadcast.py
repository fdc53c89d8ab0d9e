"""Operators announce new tasks from Telegram: ``/broadcast``.

``/broadcast`` (operators in ADMIN_IDS only): pick a project and who gets it (or give them as
``/broadcast PROJECT [all|qualified|active-days:N]``), send the text or a photo with a caption,
look at the preview and confirm. The confirmed broadcast is queued in the database; the
background job (``bot.jobs.broadcasts``, started with the dispatcher) sends it, editing the
operator's status message at most every few seconds.
"""

from __future__ import annotations

import contextlib
from typing import Any

import structlog
from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject

from bot.broadcast import service
from bot.broadcast.audience import Audience, AudienceError
from bot.broadcast.transport import Button
from bot.handlers import broadcast_views as views
from bot.handlers.broadcast_views import BcCb
from bot.i18n import t
from bot.tasks import projects
from bot.telegram.broadcast_transport import start_keyboard
from bot.telegram.runtime import App

log = structlog.get_logger("crowdpin.broadcast")
router = Router(name="broadcast")


class Form(StatesGroup):
    content = State()
    confirm = State()


async def is_operator(event: TelegramObject, app: App | None = None, event_from_user: Any = None) -> bool:
    return app is not None and event_from_user is not None and app.is_admin(event_from_user.id)


router.message.filter(is_operator)
router.callback_query.filter(is_operator)


# --------------------------------------------------------------------------- the operator's flow


@router.message(Command("broadcast"))
async def on_broadcast(message: Message, command: CommandObject, app: App, lang: str, state: FSMContext) -> None:
    await state.clear()
    args = (command.args or "").split()
    if args:
        try:
            project = await app.db.run(projects.find, args[0])
        except projects.ProjectNotFound:
            await message.answer(t("broadcast.err_no_project", lang, ref=args[0]))
            return
        try:
            spec = str(Audience.parse(args[1])) if len(args) > 1 else None
        except AudienceError:
            await message.answer(t("broadcast.err_audience", lang, spec=args[1]))
            return
        await state.update_data(project=project.id)
        if spec is None:
            await message.answer(t("broadcast.choose_audience", lang), reply_markup=views.audience_keyboard(lang))
            return
        await state.update_data(audience=spec)
        await state.set_state(Form.content)
        await message.answer(t("broadcast.ask_content", lang))
        return
    active = await app.db.run(projects.active)
    if not active:
        await message.answer(t("broadcast.no_projects", lang))
        return
    rows = [[(p.name[:60], BcCb(a="p", v=p.id or 0))] for p in active[:20]]
    text = t("broadcast.usage", lang) + "\n\n" + t("broadcast.choose_project", lang)
    await message.answer(text, reply_markup=views.keyboard(rows))


@router.callback_query(BcCb.filter(F.a == "p"))
async def on_project(query: CallbackQuery, callback_data: BcCb, lang: str, state: FSMContext) -> None:
    await state.clear()
    await state.update_data(project=callback_data.v)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(t("broadcast.choose_audience", lang), reply_markup=views.audience_keyboard(lang))


@router.callback_query(BcCb.filter(F.a == "a"))
async def on_audience(query: CallbackQuery, callback_data: BcCb, lang: str, state: FSMContext) -> None:
    data = await state.get_data()
    await query.answer()
    if "project" not in data or not isinstance(query.message, Message):
        if isinstance(query.message, Message):
            await query.message.edit_text(t("broadcast.expired", lang))
        return
    await state.update_data(audience=views.spec_from_button(callback_data.v))
    await state.set_state(Form.content)
    await query.message.edit_text(t("broadcast.ask_content", lang))


@router.message(Form.content, Command("cancel"))
@router.message(Form.confirm, Command("cancel"))
async def on_cancel_command(message: Message, lang: str, state: FSMContext) -> None:
    await state.clear()
    await message.answer(t("broadcast.cancelled", lang))


@router.message(Form.content, F.photo | F.text)
async def on_content(message: Message, app: App, lang: str, state: FSMContext) -> None:
    data = await state.get_data()
    photo_id = message.photo[-1].file_id if message.photo else None
    text = (message.caption if photo_id else message.text) or ""
    try:
        clean = service.check_text(text, with_photo=photo_id is not None)
        count = await app.db.run(service.count_recipients, data["project"], data["audience"])
    except service.BroadcastError as exc:
        await message.answer(views.error_text(exc, lang))
        return  # still waiting for content: the operator can simply send a better one
    if count == 0:
        await message.answer(t("broadcast.err_nobody", lang))
        return
    button = start_keyboard(_preview_button(data["project"], lang))
    if photo_id:
        await message.answer_photo(photo_id, caption=clean, reply_markup=button, parse_mode=None)
    else:
        await message.answer(clean, reply_markup=button, parse_mode=None)
    await state.update_data(text=clean, photo=photo_id, count=count)
    await state.set_state(Form.confirm)
    await message.answer(
        t("broadcast.preview", lang, count=count, audience=views.audience_label(data["audience"], lang)),
        reply_markup=views.keyboard(
            [[(t("broadcast.confirm", lang, count=count), BcCb(a="ok")), (t("broadcast.cancel", lang), BcCb(a="no"))]]
        ),
    )


def _preview_button(project_id: int, lang: str) -> Button:
    return Button(t("broadcast.start_button", lang), project_id)


@router.callback_query(BcCb.filter(F.a == "no"))
async def on_no(query: CallbackQuery, lang: str, state: FSMContext) -> None:
    await state.clear()
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(t("broadcast.cancelled", lang))


@router.callback_query(BcCb.filter(F.a == "ok"))
async def on_confirm(query: CallbackQuery, app: App, lang: str, state: FSMContext) -> None:
    data = await state.get_data()
    await query.answer()
    message = query.message
    if not isinstance(message, Message):
        return
    if await state.get_state() != Form.confirm.state or "text" not in data:
        await message.edit_text(t("broadcast.expired", lang))
        return
    await state.clear()  # a second tap finds no state: no second broadcast
    try:
        broadcast = await app.db.run(
            service.create,
            data["project"],
            data["text"],
            audience=data["audience"],
            photo_file_id=data.get("photo"),
            created_by=query.from_user.id,
            status_chat_id=message.chat.id,
        )
    except service.BroadcastError as exc:
        await message.edit_text(views.error_text(exc, lang))
        return
    assert broadcast.id is not None
    await app.db.run(service.set_status_message, broadcast.id, message.chat.id, message.message_id)
    progress = await app.db.run(service.progress, broadcast.id)
    await message.edit_text(
        views.render_status(progress, lang, app.settings.broadcast.broadcast_rate), reply_markup=views.stop_keyboard(broadcast.id, lang)
    )
    if app.jobs is not None:
        app.jobs.broadcasts.wake()


@router.callback_query(BcCb.filter(F.a == "stop"))
async def on_stop(query: CallbackQuery, callback_data: BcCb, app: App, lang: str) -> None:
    try:
        await app.db.run(service.cancel, callback_data.v)
    except service.BroadcastError as exc:
        await query.answer(views.error_text(exc, lang)[:190])
        return
    await query.answer(t("broadcast.stopped", lang, id=callback_data.v))
    progress = await app.db.run(service.progress, callback_data.v)
    if isinstance(query.message, Message):
        with contextlib.suppress(TelegramBadRequest):
            await query.message.edit_text(views.render_status(progress, lang, app.settings.broadcast.broadcast_rate))
