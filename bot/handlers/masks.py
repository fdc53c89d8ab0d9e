"""Mask tasks in the chat: confirm-mask (Correct / Wrong) and magic pin (tap a grid cell).

Decisions live in :mod:`bot.tasks.magic_pin` (state machine, compare-and-set, answers) and the
pictures in :mod:`bot.tasks.pictures` (made on their own thread pool, ``app.pictures``); this
module renders task cards and talks to Telegram. The file ids of uploaded grid pictures and
overlays are remembered in the bot's run-time state (``app.grid_file_ids``,
``app.overlay_file_ids``); magic-pin overlays differ per tap and are uploaded each time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

import structlog
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup

from bot.autoseg.overlay import CANDIDATE_MARKS
from bot.cache import LRUCache
from bot.handlers import keyboards, presenter
from bot.handlers import worker as worker_loop
from bot.handlers.callbacks import Act, TaskCb
from bot.handlers.middlewares import WorkerCtx
from bot.handlers.presenter import Rendered
from bot.i18n import t
from bot.tasks import magic_pin
from bot.tasks.magic_pin import MAX_POINTS, Phase, PinRefusal, PinState, Step
from bot.tasks.pictures import image_ref, mask_key
from bot.tasks.service import PIN_NONE, Refusal, TaskCard
from bot.telegram.runtime import App

log = structlog.get_logger("crowdpin.masks")
router = Router(name="masks")

K = TypeVar("K", bound=Hashable)


def _remember(cache: LRUCache[K, str], key: K) -> Callable[[str], None]:
    """A ``Rendered.on_file_id`` that keeps the uploaded picture's file id under ``key``."""

    def put(file_id: str) -> None:
        cache[key] = file_id

    return put


# ------------------------------------------------------------------ renderers
@presenter.renderer("confirm-mask")
async def render_confirm(app: App, card: TaskCard, lang: str) -> Rendered:
    ref = image_ref(card)
    name, _ = magic_pin.parse_prelabel(card.prelabel)
    mask_json = card.mask_rle
    if not mask_json:
        # No pre-label mask: make one (prelabel box, else image centre) and keep it on the task,
        # so every worker of the task judges the same mask and exports contain what was judged.
        mask_json = await app.db.run(
            magic_pin.store_auto_mask, card.task_id, await app.pictures.run(app.pictures.auto_mask_json, ref, card.prelabel)
        )
        log.info("masks.auto_mask", task_id=card.task_id)
    lines = [] if card.question else [t("masks.confirm.question", lang)]
    if name:
        lines.append(t("masks.confirm.object", lang, object=name))
    try:
        magic_pin.parse_mask(mask_json)
    except ValueError as exc:
        log.error("masks.bad_mask", task_id=card.task_id, error=str(exc))
        file_id, upload = await presenter.phone_photo(app, card)
        return Rendered(
            caption=presenter.caption(card, lang, *lines, t("masks.confirm.unreadable", lang)),
            keyboard=keyboards.confirm_mask(card.assignment_id, lang, can_answer=False),  # nothing to fix: no ✏️
            file_id=file_id,
            upload=upload,
            cache_image_id=card.image_id if upload is not None else None,
        )
    key = (ref.sha256, mask_key(mask_json))
    file_id = app.overlay_file_ids.get(key)
    return Rendered(
        caption=presenter.caption(card, lang, *lines),
        keyboard=keyboards.confirm_mask(card.assignment_id, lang, extra=presenter.precise(app, card, lang)),
        file_id=file_id,
        upload=None if file_id else await app.pictures.run(app.pictures.confirm_jpeg, ref, mask_json),
        on_file_id=_remember(app.overlay_file_ids, key),
    )


def pin_caption(card: TaskCard, state: PinState, lang: str) -> str:
    name, _ = magic_pin.parse_prelabel(card.prelabel)
    lines = [t("masks.pin.object", lang, object=name) if name else ""]
    if state.phase == Phase.GRID:
        lines.append(t("masks.pin.hint_grid", lang))
    elif state.phase == Phase.MASK:
        if len(state.candidates) > 1:
            lines.append(t("masks.pin.hint_pick", lang))
        else:
            lines.append(t("masks.pin.hint_mask" if state.area > 0 else "masks.pin.hint_empty", lang))
    elif state.phase == Phase.CHOOSE:
        lines.append(t("masks.pin.hint_choose", lang))
    else:
        if len(state.candidates) > 1:
            lines.append(t("masks.pin.fixing", lang, mark=CANDIDATE_MARKS[state.fixing], number=state.fixing + 1))
        lines.append(t("masks.pin.hint_add" if state.positive else "masks.pin.hint_add_remove", lang))
    if state.points:
        lines.append(t("masks.pin.points", lang, count=len(state.points)))
    return presenter.caption(card, lang, *lines)


def pin_keyboard(card: TaskCard, state: PinState, lang: str, extra: list[InlineKeyboardButton] | None = None) -> InlineKeyboardMarkup:
    aid = card.assignment_id
    if state.phase == Phase.GRID:
        return keyboards.pin_grid(aid, state.rev, lang, extra=extra or ())
    if state.phase == Phase.MASK:
        return keyboards.pin_mask(
            aid,
            state.rev,
            lang,
            candidates=len(state.candidates),
            pickable=state.pickable(),
            can_add=len(state.points) < MAX_POINTS,
            extra=extra or (),
        )
    if state.phase == Phase.CHOOSE:
        return keyboards.pin_choose(aid, state.rev, lang, pickable=state.pickable())
    return keyboards.pin_add(aid, state.rev, lang, positive=state.positive)


@presenter.renderer("magic-pin")
async def render_pin(app: App, card: TaskCard, lang: str) -> Rendered:
    state = PinState.from_dict(card.state)
    ref = image_ref(card)
    caption, keyboard = pin_caption(card, state, lang), pin_keyboard(card, state, lang, presenter.precise(app, card, lang))
    if state.phase == Phase.GRID:
        file_id = app.grid_file_ids.get(ref.sha256)
        return Rendered(
            caption=caption,
            keyboard=keyboard,
            file_id=file_id,
            upload=None if file_id else await app.pictures.run(app.pictures.grid_jpeg, ref),
            on_file_id=_remember(app.grid_file_ids, ref.sha256),
        )
    return Rendered(caption=caption, keyboard=keyboard, upload=await app.pictures.run(app.pictures.pin_jpeg, ref, state))


# ------------------------------------------------------------------ handlers
def _notice(refusal: Refusal | PinRefusal, lang: str) -> str:
    if isinstance(refusal, Refusal):
        return worker_loop.refusal_text(refusal, lang)
    return t(f"masks.refuse.{refusal.value}", lang)


@router.callback_query(TaskCb.filter(F.a == Act.CONFIRM))
async def on_confirm(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    # Anything but 1/0 becomes a value no project accepts, so the domain refuses it.
    value = {1: "yes", 0: "no"}.get(callback_data.v, f"#{callback_data.v}")
    await worker_loop.finish(query, bot, app, worker, lang, callback_data.id, "answer", value)


@router.callback_query(TaskCb.filter(F.a == Act.NONE))
async def on_none(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    aid = callback_data.id
    refusal = await app.db.run(magic_pin.check_open, worker.id, aid)  # whose, open: before "busy"
    if refusal is not None:
        await _refuse(query, aid, "none", refusal, lang)
        return
    if aid in app.pins_in_flight:
        await query.answer(_notice(PinRefusal.BUSY, lang))
        return
    await worker_loop.finish(query, bot, app, worker, lang, aid, "answer", PIN_NONE)


@router.callback_query(TaskCb.filter(F.a.in_({Act.PICK, Act.KEEP})))
async def on_pick(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    """A candidate's number (or Keep): answer "mask" with exactly that candidate.

    Owner, lease, revision and candidate are checked first (a forged, stale or foreign pick
    changes nothing and never learns whether the owner is busy); the answer then goes through
    the shared ``finish()``, whose conditional close of the lease and ``answer:<id>`` ledger key
    make a double tap pay once.
    """
    aid = callback_data.id
    v = callback_data.v if callback_data.a == Act.PICK else magic_pin.pick_value(callback_data.v, 0)
    kept = await app.db.run(magic_pin.kept_mask, worker.id, aid, v)
    if isinstance(kept, (Refusal, PinRefusal)):  # str enums: test before treating it as the mask
        await _refuse(query, aid, "pick", kept, lang)
        return
    if aid in app.pins_in_flight:
        await query.answer(_notice(PinRefusal.BUSY, lang))
        return
    await worker_loop.finish(query, bot, app, worker, lang, aid, "answer", "mask", mask_rle=kept)


async def _refuse(query: CallbackQuery, aid: int, action: str, refusal: Refusal | PinRefusal, lang: str) -> None:
    log.info("masks.refused", assignment_id=aid, action=action, reason=refusal.value)
    await query.answer(_notice(refusal, lang))


_STEP_ACTIONS = {Act.CELL: "cell", Act.RETRY: "retry", Act.ADD: "add", Act.FIX: "fix"}


@router.callback_query(TaskCb.filter(F.a.in_(set(_STEP_ACTIONS))))
async def on_pin_step(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    aid = callback_data.id
    action = _STEP_ACTIONS[callback_data.a]
    # Decide first (reads only): a foreign, forged or stale tap is refused as such, never as "busy".
    step = await app.db.run(magic_pin.pin_step, worker.id, aid, action, callback_data.v)
    if not isinstance(step, Step):
        await _refuse(query, aid, action, step, lang)
        return
    if aid in app.pins_in_flight:
        await query.answer(_notice(PinRefusal.BUSY, lang))
        return
    app.pins_in_flight.add(aid)
    try:
        await _pin_step(query, step, action, bot, app, worker, lang)
    finally:
        app.pins_in_flight.discard(aid)


async def _pin_step(query: CallbackQuery, step: Step, action: str, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    if step.segment is not None:
        await app.pictures.run(app.pictures.segment_step, step)
    card = await app.db.run(magic_pin.commit_step, worker.id, step, lang=lang, tz=app.tz)
    if not isinstance(card, TaskCard):
        # Lost a race (another replica, an expiry): the winner's picture stays; nothing changed.
        log.info("masks.commit_refused", assignment_id=step.assignment_id, action=action, reason=card.value)
        await query.answer(_notice(card, lang))
        return
    answer_cb = presenter.spawn(presenter.answer_callback_soon(bot, query.id))
    message = query.message
    chat_id = message.chat.id if message else query.from_user.id
    message_id = message.message_id if message else None
    try:
        if step.redraw or message_id is None:
            await presenter.show(bot, app, chat_id, card, lang, edit_message_id=message_id)
            return
        state = PinState.from_dict(card.state)
        try:
            await bot.edit_message_caption(
                chat_id=chat_id,
                message_id=message_id,
                caption=pin_caption(card, state, lang),
                reply_markup=pin_keyboard(card, state, lang, presenter.precise(app, card, lang)),
            )
        except TelegramBadRequest as exc:
            log.info("masks.caption_edit_failed", error=exc.message)
            await presenter.show(bot, app, chat_id, card, lang, edit_message_id=message_id)
    finally:
        await answer_cb
