"""Mask tasks in the chat: confirm-mask (Correct / Wrong) and magic pin (tap a grid cell).

Decisions live in :mod:`bot.tasks.magic_pin` (state machine, compare-and-set, answers); this
module draws pictures and talks to Telegram. Pixel work (segmentation, overlays, JPEG encoding)
runs on this module's own small thread pool so it never queues behind, or blocks, database work
on ``app.db``'s executor.

Pictures and what is cached:

* the plain grid picture of an image is the same for every worker: its JPEG is written once under
  ``MEDIA_DIR/grid/`` and its Telegram ``file_id`` kept in a per-process LRU (a restart or a
  second replica uploads it once more - cheaper than a schema change for a first-look picture);
* a confirm-mask overlay is the same for all workers of a task: JPEG under
  ``MEDIA_DIR/overlays/`` (named by image and mask hash) and its ``file_id`` in an LRU;
* magic-pin overlays differ per tap and are uploaded each time.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import structlog
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery

from bot.autoseg.overlay import draw_grid, render_overlay, to_jpeg
from bot.handlers import keyboards, presenter
from bot.handlers import worker as worker_loop
from bot.handlers.callbacks import Act, TaskCb
from bot.handlers.context import App, WorkerCtx
from bot.handlers.presenter import Rendered
from bot.i18n import t
from bot.tasks import magic_pin
from bot.tasks.magic_pin import MAX_POINTS, ImageRef, Phase, PinRefusal, PinState, Step
from bot.tasks.service import PIN_NONE, Refusal, TaskCard

log = structlog.get_logger("crowdpin.masks")
router = Router(name="masks")

T = TypeVar("T")
CPU_THREADS = max(1, min(2, os.cpu_count() or 1))


# ------------------------------------------------------------------ small infrastructure
class _Lru:
    """A thread-safe LRU map (used from the event loop and the pixel threads)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_pixels = _Lru(8)  # sha256 -> (phone RGB array, display size of the original)
GRID_FILE_IDS = _Lru(4096)  # sha256 -> file_id of the plain grid picture
OVERLAY_FILE_IDS = _Lru(4096)  # (sha256, mask hash) -> file_id of a confirm overlay
_phone_masks = _Lru(64)  # mask key -> the same mask at phone size (skips decoding big RLEs)
_busy: set[int] = set()  # assignments whose previous tap is still being worked on (this process)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=CPU_THREADS, thread_name_prefix="crowdpin-masks")
        return _pool


async def cpu(fn: Callable[..., T], *args: Any) -> T:
    """Run pixel work off the event loop, on the masks pool (not the DB executor)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(fn, *args))


def _ref(card: TaskCard) -> ImageRef:
    return ImageRef(card.image_id, card.image_path, card.image_sha256, card.phone_path, card.width, card.height)


def _load(app: App, ref: ImageRef) -> tuple[np.ndarray, tuple[int, int]]:
    hit = _pixels.get(ref.sha256)
    if hit is None:
        rgb = magic_pin.load_phone_rgb(ref, app.media_dir, app.settings.media.phone_long_side)
        hit = (rgb, magic_pin.display_size(ref.path, ref.width, ref.height))
        _pixels.put(ref.sha256, hit)
    return hit


def _write_once(target: Path, make: Callable[[], bytes]) -> bytes:
    if target.exists():
        return target.read_bytes()
    data = make()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return data


# ------------------------------------------------------------------ pixel work (pool threads)
def grid_jpeg(app: App, ref: ImageRef) -> bytes:
    rows, cols = magic_pin.GRID_ROWS, magic_pin.GRID_COLS
    target = app.media_dir / "grid" / ref.sha256[:2] / f"{ref.sha256}-{rows}x{cols}.jpg"
    long_side = app.settings.media.phone_long_side
    return _write_once(target, lambda: to_jpeg(draw_grid(_load(app, ref)[0], rows, cols, max_side=long_side)))


def _rle_key(mask: dict[str, Any]) -> tuple[Any, ...]:
    counts = mask.get("counts")
    digest = hashlib.sha1(counts.encode() if isinstance(counts, str) else repr(counts).encode()).hexdigest()
    return (tuple(mask.get("size", ())), digest)


def pin_jpeg(app: App, ref: ImageRef, state: PinState) -> bytes:
    """The current mask with its pins; in the ADD phase with the grid drawn over it."""
    rgb, _ = _load(app, ref)
    h, w = rgb.shape[:2]
    long_side = app.settings.media.phone_long_side
    mask = None
    if state.mask:
        mask = _phone_masks.get((ref.sha256, *_rle_key(state.mask)))
        if mask is None or mask.shape != (h, w):
            mask = magic_pin.display_mask(state.mask, (w, h))
    img = render_overlay(rgb, mask, magic_pin.cell_pixels(state.points, w, h), max_side=long_side)
    if state.phase == Phase.ADD:
        img = draw_grid(img, magic_pin.GRID_ROWS, magic_pin.GRID_COLS, max_side=long_side)
    return to_jpeg(img)


def _mask_key(mask_json: str) -> str:
    return hashlib.sha1(mask_json.encode()).hexdigest()[:16]


def confirm_jpeg(app: App, ref: ImageRef, mask_json: str) -> bytes:
    target = app.media_dir / "overlays" / ref.sha256[:2] / f"{ref.sha256}-{_mask_key(mask_json)}.jpg"

    def make() -> bytes:
        rgb, _ = _load(app, ref)
        h, w = rgb.shape[:2]
        mask = magic_pin.display_mask(mask_json, (w, h))
        return to_jpeg(render_overlay(rgb, mask, max_side=app.settings.media.phone_long_side))

    return _write_once(target, make)


def auto_mask_json(app: App, ref: ImageRef, prelabel: str | None) -> str:
    rgb, display = _load(app, ref)
    _, box = magic_pin.parse_prelabel(prelabel)
    return json.dumps(magic_pin.auto_mask(rgb, display, box), separators=(",", ":"))


def segment_step(app: App, step: Step) -> None:
    """Fill the step's mask from its points (phone-resolution segmentation, upsampled)."""
    assert step.image is not None and step.segment is not None
    started = time.perf_counter()
    rgb, display = _load(app, step.image)
    phone = magic_pin.segment_phone(rgb, step.segment)
    step.state.mask, step.state.area = magic_pin.to_original(phone, display)
    _phone_masks.put((step.image.sha256, *_rle_key(step.state.mask)), phone)
    log.info(
        "masks.segmented",
        assignment_id=step.assignment_id,
        points=len(step.segment),
        area=step.state.area,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )


# ------------------------------------------------------------------ renderers
@presenter.renderer("confirm-mask")
async def render_confirm(app: App, card: TaskCard, lang: str) -> Rendered:
    ref = _ref(card)
    name, _ = magic_pin.parse_prelabel(card.prelabel)
    mask_json = card.mask_rle
    if not mask_json:
        # No pre-label mask: make one (prelabel box, else image centre) and keep it on the task,
        # so every worker of the task judges the same mask and exports contain what was judged.
        mask_json = await app.db.run(magic_pin.store_auto_mask, card.task_id, await cpu(auto_mask_json, app, ref, card.prelabel))
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
            keyboard=keyboards.confirm_mask(card.assignment_id, lang, can_answer=False),
            file_id=file_id,
            upload=upload,
            cache_image_id=card.image_id if upload is not None else None,
        )
    key = (ref.sha256, _mask_key(mask_json))
    file_id = OVERLAY_FILE_IDS.get(key)
    return Rendered(
        caption=presenter.caption(card, lang, *lines),
        keyboard=keyboards.confirm_mask(card.assignment_id, lang),
        file_id=file_id,
        upload=None if file_id else await cpu(confirm_jpeg, app, ref, mask_json),
        on_file_id=lambda fid: OVERLAY_FILE_IDS.put(key, fid),
    )


def pin_caption(card: TaskCard, state: PinState, lang: str) -> str:
    name, _ = magic_pin.parse_prelabel(card.prelabel)
    lines = [t("masks.pin.object", lang, object=name) if name else ""]
    if state.phase == Phase.GRID:
        lines.append(t("masks.pin.hint_grid", lang))
    elif state.phase == Phase.MASK:
        lines.append(t("masks.pin.hint_mask" if state.area > 0 else "masks.pin.hint_empty", lang))
    else:
        lines.append(t("masks.pin.hint_add" if state.positive else "masks.pin.hint_add_remove", lang))
    if state.points:
        lines.append(t("masks.pin.points", lang, count=len(state.points)))
    return presenter.caption(card, lang, *lines)


def pin_keyboard(card: TaskCard, state: PinState, lang: str):  # type: ignore[no-untyped-def]
    aid = card.assignment_id
    if state.phase == Phase.GRID:
        return keyboards.pin_grid(aid, state.rev, lang)
    if state.phase == Phase.MASK:
        return keyboards.pin_mask(
            aid, state.rev, lang, can_keep=bool(state.mask) and state.area > 0, can_add=len(state.points) < MAX_POINTS
        )
    return keyboards.pin_add(aid, state.rev, lang, positive=state.positive)


@presenter.renderer("magic-pin")
async def render_pin(app: App, card: TaskCard, lang: str) -> Rendered:
    state = PinState.from_dict(card.state)
    ref = _ref(card)
    caption, keyboard = pin_caption(card, state, lang), pin_keyboard(card, state, lang)
    if state.phase == Phase.GRID:
        file_id = GRID_FILE_IDS.get(ref.sha256)
        return Rendered(
            caption=caption,
            keyboard=keyboard,
            file_id=file_id,
            upload=None if file_id else await cpu(grid_jpeg, app, ref),
            on_file_id=lambda fid: GRID_FILE_IDS.put(ref.sha256, fid),
        )
    return Rendered(caption=caption, keyboard=keyboard, upload=await cpu(pin_jpeg, app, ref, state))


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
    if callback_data.id in _busy:
        await query.answer(_notice(PinRefusal.BUSY, lang))
        return
    await worker_loop.finish(query, bot, app, worker, lang, callback_data.id, "answer", PIN_NONE)


@router.callback_query(TaskCb.filter(F.a == Act.KEEP))
async def on_keep(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    aid = callback_data.id
    if aid in _busy:
        await query.answer(_notice(PinRefusal.BUSY, lang))
        return
    kept = await app.db.run(magic_pin.kept_mask, worker.id, aid, callback_data.v)
    if isinstance(kept, (Refusal, PinRefusal)):  # str enums: test before treating it as the mask
        log.info("masks.refused", assignment_id=aid, action="keep", reason=kept.value)
        await query.answer(_notice(kept, lang))
        return
    # The shared finish() answers exactly once (a second Keep finds the lease answered).
    await worker_loop.finish(query, bot, app, worker, lang, aid, "answer", "mask", mask_rle=kept)


_STEP_ACTIONS = {Act.CELL: "cell", Act.RETRY: "retry", Act.ADD: "add"}


@router.callback_query(TaskCb.filter(F.a.in_(set(_STEP_ACTIONS))))
async def on_pin_step(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    aid = callback_data.id
    if aid in _busy:
        await query.answer(_notice(PinRefusal.BUSY, lang))
        return
    _busy.add(aid)
    try:
        await _pin_step(query, callback_data, bot, app, worker, lang)
    finally:
        _busy.discard(aid)


async def _pin_step(query: CallbackQuery, callback_data: TaskCb, bot: Bot, app: App, worker: WorkerCtx, lang: str) -> None:
    action = _STEP_ACTIONS[callback_data.a]
    step = await app.db.run(magic_pin.pin_step, worker.id, callback_data.id, action, callback_data.v)
    if not isinstance(step, Step):
        log.info("masks.refused", assignment_id=callback_data.id, action=action, reason=step.value)
        await query.answer(_notice(step, lang))
        return
    if step.segment is not None:
        await cpu(segment_step, app, step)
    card = await app.db.run(magic_pin.commit_step, worker.id, step, lang=lang, tz=app.tz)
    if not isinstance(card, TaskCard):
        # Lost a race (another replica, an expiry): the winner's picture stays; nothing changed.
        log.info("masks.commit_refused", assignment_id=callback_data.id, action=action, reason=card.value)
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
                reply_markup=pin_keyboard(card, state, lang),
            )
        except TelegramBadRequest as exc:
            log.info("masks.caption_edit_failed", error=exc.message)
            await presenter.show(bot, app, chat_id, card, lang, edit_message_id=message_id)
    finally:
        await answer_cb
