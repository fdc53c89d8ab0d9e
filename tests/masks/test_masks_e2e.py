"""Mask tasks end to end: the real bot polls the emulator over HTTP; workers tap buttons."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select, update

from bot import autoseg
from bot.autoseg import rle as coco_rle
from bot.autoseg.overlay import CANDIDATE_MARKS, CANDIDATE_RGB, cell_center
from bot.config import AutosegSettings
from bot.emulator.state import CallbackQueryState
from bot.handlers.callbacks import TaskCb
from bot.i18n import t
from bot.sample import SampleImage, true_mask
from bot.sandbox import Sandbox, create_mask_project
from bot.simulate import Screen, SimWorker
from bot.tasks.magic_pin import CELLS, Phase, PinState, pick_value
from bot.tasks.models import Answer, Assignment, Image, Task, TaskStatus
from bot.wallet.accounts import LABELING_EXPENSE
from bot.wallet.ledger import account_balance, ledger_total
from bot.wallet.models import LedgerTxn
from tests.masks.candidate_backend import Held, ring_masks
from tests.masks.helpers import best_cell, outside_cell

WAIT = 30.0  # generous: the machine is shared and segmentation is CPU work


# ------------------------------------------------------------------ helpers
def _task_of(box: Sandbox, assignment_id: int) -> Task:
    with box.db.session() as s:
        assignment = s.get(Assignment, assignment_id)
        assert assignment is not None
        task = s.get(Task, assignment.task_id)
        assert task is not None
        return task


def _sample(samples: list[SampleImage], box: Sandbox, assignment_id: int) -> SampleImage:
    external_id = _task_of(box, assignment_id).external_id
    return next(s for s in samples if s.external_id == external_id)


def _state(box: Sandbox, assignment_id: int) -> PinState:
    with box.db.session() as s:
        return PinState.from_json(s.get(Assignment, assignment_id).state_json)  # type: ignore[union-attr]


def _answers(box: Sandbox) -> list[Answer]:
    with box.db.session() as s:
        return list(s.execute(select(Answer).order_by(Answer.id)).scalars())


def _message(box: Sandbox, sim: SimWorker, message_id: int) -> Any:
    return next(m for m in box.emulator.transcript(sim.user_id) if m.message_id == message_id)


def _texts(message: Any) -> list[str]:
    return [b["text"] for row in (message.reply_markup or {}).get("inline_keyboard", []) for b in row]


async def press(box: Sandbox, sim: SimWorker, message_id: int, *, text: str | None = None, data: str | None = None) -> dict:
    """Tap a button and wait until the bot has answered it and, if accepted, edited the chat."""
    emu = box.emulator
    before = emu.chat_version(sim.user_id)
    if data is not None and text is None:
        cq = forge_tap(box, sim.user_id, message_id, data)
    else:
        cq = await emu.tap(sim.user_id, message_id, text=text)
    answer = await emu.wait_for(lambda: emu.callback_answer(cq), timeout=WAIT)
    if not answer.get("text"):
        await emu.wait_for(lambda: emu.chat_version(sim.user_id) > before, timeout=WAIT)
    return answer


def forge_tap(box: Sandbox, user_id: int, message_id: int, data: str) -> str:
    """A callback query with any data on a message, as a modified client could send it.

    (The emulator's ``tap`` only presses buttons that exist, as a real client does.)
    """
    emu = box.emulator
    bot = emu.bot()
    user = emu.user(user_id)
    chat = bot.chats[user.id]
    message = chat.live(message_id)
    assert message is not None
    query_id = str(secrets.randbits(63))
    emu.callback_queries[query_id] = CallbackQueryState(
        id=query_id, token=bot.token, user_id=user.id, chat_id=chat.chat_id, message_id=message_id, data=data, created_at=emu.clock()
    )
    payload = {
        "id": query_id,
        "from": user.to_api(),
        "message": message.to_api(chat.api_chat()),
        "chat_instance": "1",
        "data": data,
    }
    emu._queue(bot, "callback_query", payload)
    emu.notifier.notify(emu._key(bot, chat))
    return query_id


def _size(sample: SampleImage) -> tuple[int, int]:
    with PILImage.open(sample.path) as image:
        return image.size


def _photo(box: Sandbox, file_id: str) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(box.emulator.file_bytes(file_id))).convert("RGB"), dtype=np.int16)


# ------------------------------------------------------------------ confirm-mask
async def test_confirm_mask_loop_with_overlap_and_payment(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    _project, samples = create_mask_project(box.db, tmp_path / "images", count=4, overlap=2, price=12, wrong_every=2)
    wrong = {s.external_id for i, s in enumerate(samples) if i % 2 == 1}
    photos: dict[str, set[str]] = {}

    def judge(screen: Screen) -> str:
        task = _task_of(box, screen.assignment_id or 0)
        photos.setdefault(task.external_id, set()).add(screen.photo_file_id or "")
        assert t("masks.confirm.object", "en", object=task.prelabel) in screen.caption
        return t("masks.wrong" if task.external_id in wrong else "masks.correct", "en")

    sims = [SimWorker.create(box.emulator, f"w{i}", "en", chooser=judge) for i in range(2)]
    for sim in sims:
        await sim.start()
    done = await asyncio.gather(*(sim.work() for sim in sims))
    assert done == [4, 4]
    answers = _answers(box)
    assert len(answers) == 8 and all(a.reward == 12 for a in answers)
    with box.db.session() as s:
        by_task = dict(s.execute(select(Task.external_id, Task.id)).all())
        assert set(s.execute(select(Task.status)).scalars()) == {TaskStatus.DONE}
        assert account_balance(s, LABELING_EXPENSE) == -8 * 12
        assert ledger_total(s) == 0
        assert s.execute(select(func.count(Image.id)).where(Image.tg_file_id.is_not(None))).scalar_one() == 0  # type: ignore[union-attr]
    for external_id, task_id in by_task.items():
        values = {a.value for a in answers if a.task_id == task_id}
        assert values == ({"no"} if external_id in wrong else {"yes"})
    # one overlay per task, uploaded once and reused for the second worker
    assert all(len(ids) == 1 for ids in photos.values()) and len({i for ids in photos.values() for i in ids}) == 4
    # the picture is the mask overlay: object pixels tinted, not the plain photo
    sample = samples[0]
    shown = _photo(box, next(iter(photos[sample.external_id])))
    plain = np.asarray(PILImage.open(sample.path).convert("RGB"), dtype=np.int16)
    inside = true_mask(sample)
    assert np.abs(shown - plain)[inside].mean() > 20


async def test_confirm_mask_without_mask_is_auto_generated_once(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    _, samples = create_mask_project(box.db, tmp_path / "images", count=1, overlap=2, masks=False)
    sample = samples[0]
    x0, y0, x1, y1 = sample.bbox
    with box.db.session() as s:
        s.execute(update(Task).values(prelabel=f"circle [{x0 - 6},{y0 - 6},{x1 + 6},{y1 + 6}]"))
    seen: list[str] = []

    def judge(screen: Screen) -> str:
        seen.append(screen.photo_file_id or "")
        assert t("masks.confirm.object", "ko", object="circle") in screen.caption and "[" not in screen.caption
        return t("masks.correct", "ko")

    sims = [SimWorker.create(box.emulator, f"w{i}", "ko", chooser=judge) for i in range(2)]
    for sim in sims:
        await sim.start()
        assert await sim.work() == 1
    with box.db.session() as s:
        mask_json = s.execute(select(Task.mask_rle)).scalar_one()
    mask = coco_rle.decode(json.loads(mask_json))
    assert mask.shape == (240, 320)
    assert coco_rle.mask_iou(mask, true_mask(sample)) > 0.8  # the box seeded it
    assert len(set(seen)) == 1  # both workers judged the same stored mask (same picture)


async def test_confirm_forged_value_and_other_users_task_are_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    create_mask_project(box.db, tmp_path / "images", count=2, overlap=1)
    a = SimWorker.create(box.emulator, "a", "en")
    b = SimWorker.create(box.emulator, "b", "en")
    for sim in (a, b):
        await sim.start()
    sa, sb = await a.request_task(), await b.request_task()
    assert sa is not None and sb is not None and sa.assignment_id != sb.assignment_id
    answer = await press(box, a, sa.message_id, data=f"t:c:{sa.assignment_id}:7")
    assert answer["text"] == t("refuse.invalid", "en")
    answer = await press(box, b, sb.message_id, data=f"t:c:{sa.assignment_id}:1")
    assert answer["text"] == t("refuse.not_yours", "en")
    answer = await press(box, b, sb.message_id, data="t:c:424242:1")
    assert answer["text"] == t("refuse.unknown", "en")
    assert _answers(box) == []
    # the real button still works
    nxt = await a.tap(sa, t("masks.correct", "en"))
    assert nxt is None or nxt.assignment_id != sa.assignment_id
    assert [x.value for x in _answers(box)] == ["yes"]


# ------------------------------------------------------------------ magic pin
async def _pin_screen(box: Sandbox, sim: SimWorker) -> Screen:
    screen = await sim.request_task()
    assert screen is not None
    assert _texts(_message(box, sim, screen.message_id))[:16] == list(CELLS)
    return screen


class _Pinned(NamedTuple):
    """One worker in front of their first Magic Pin task's grid."""

    sim: SimWorker
    screen: Screen
    aid: int
    mid: int
    sample: SampleImage


async def _pinned(box: Sandbox, tmp_path: Path, lang: str, **project: Any) -> _Pinned:
    """A magic-pin project (``create_mask_project``'s options), a worker in ``lang``, their task's grid."""
    _, samples = create_mask_project(box.db, tmp_path / "images", type="magic-pin", **project)
    sim = SimWorker.create(box.emulator, "w", lang)
    await sim.start()
    screen = await _pin_screen(box, sim)
    aid = screen.assignment_id or 0
    return _Pinned(sim, screen, aid, screen.message_id, _sample(samples, box, aid))


async def test_magic_pin_cell_then_keep(one_mask: Sandbox, tmp_path: Path) -> None:
    box = one_mask
    sim, screen, _, _, sample = await _pinned(box, tmp_path, "en", count=2, price=20)
    grid_photo = screen.photo_file_id
    assert t("masks.pin.hint_grid", "en") in screen.caption
    await press(box, sim, screen.message_id, text=CELLS[best_cell(sample)])
    shown = _message(box, sim, screen.message_id)  # the same message, edited in place
    assert shown.edited and shown.photo_file_id != grid_photo
    assert t("masks.pin.hint_mask", "en") in (shown.caption or "")
    assert _texts(shown)[:4] == [t("masks.pin.keep", "en"), t("masks.pin.retry", "en"), t("masks.pin.add", "en"), t("masks.pin.none", "en")]
    # the new picture shows the mask: the object is tinted
    inside = true_mask(sample)
    plain = np.asarray(PILImage.open(sample.path).convert("RGB"), dtype=np.int16)
    assert np.abs(_photo(box, shown.photo_file_id) - plain)[inside].mean() > 20
    current = sim.screen()
    assert current is not None and current.assignment_id == screen.assignment_id
    nxt = await sim.tap(current, t("masks.pin.keep", "en"))
    assert nxt is not None and nxt.message_id == screen.message_id and nxt.assignment_id != screen.assignment_id
    (answer,) = _answers(box)
    assert answer.value == "mask" and answer.reward == 20
    assert coco_rle.mask_iou(coco_rle.decode(json.loads(answer.mask_rle or "")), inside) > 0.9
    assert t("masks.pin.hint_grid", "en") in nxt.caption  # the next task starts on its grid


async def test_magic_pin_retry_add_points_and_remove_area(one_mask: Sandbox, tmp_path: Path) -> None:
    box = one_mask
    sim, screen, aid, mid, sample = await _pinned(box, tmp_path, "ko", count=1)
    grid_photo = screen.photo_file_id
    # a wrong cell, then "try another cell": the same grid picture comes back (cached file_id)
    await press(box, sim, mid, text=CELLS[outside_cell(sample)])
    await press(box, sim, mid, text=t("masks.pin.retry", "ko"))
    again = _message(box, sim, mid)
    assert again.photo_file_id == grid_photo and _texts(again)[:16] == list(CELLS)
    assert _state(box, aid).phase == Phase.GRID
    # the right cell, then add a point in "remove area" mode on the background
    await press(box, sim, mid, text=CELLS[best_cell(sample)])
    await press(box, sim, mid, text=t("masks.pin.add", "ko"))
    adding = _message(box, sim, mid)
    assert _texts(adding)[:16] == list(CELLS) and "✔ " + t("masks.pin.mode_add", "ko") in _texts(adding)
    await press(box, sim, mid, text=t("masks.pin.mode_remove", "ko"))
    switched = _message(box, sim, mid)
    assert switched.photo_file_id == adding.photo_file_id  # only the caption and buttons changed
    assert "✔ " + t("masks.pin.mode_remove", "ko") in _texts(switched)
    assert t("masks.pin.hint_add_remove", "ko") in (switched.caption or "")
    await press(box, sim, mid, text=CELLS[outside_cell(sample)])
    state = _state(box, aid)
    assert state.phase == Phase.MASK and state.points == [(CELLS[best_cell(sample)], True), (CELLS[outside_cell(sample)], False)]
    assert t("masks.pin.points", "ko", count=2) in (_message(box, sim, mid).caption or "")
    await press(box, sim, mid, text=t("masks.pin.keep", "ko"))
    (answer,) = _answers(box)
    assert coco_rle.mask_iou(coco_rle.decode(json.loads(answer.mask_rle or "")), true_mask(sample)) > 0.9


async def test_magic_pin_no_such_object(sandbox: Sandbox, tmp_path: Path) -> None:
    box = sandbox
    create_mask_project(box.db, tmp_path / "images", type="magic-pin", count=2, price=7)
    sim = SimWorker.create(box.emulator, "w", "en")
    await sim.start()
    screen = await _pin_screen(box, sim)
    nxt = await sim.tap(screen, t("masks.pin.none", "en"))
    assert nxt is not None and nxt.message_id == screen.message_id
    (answer,) = _answers(box)
    assert answer.value == "none" and answer.mask_rle is None and answer.reward == 7


async def test_foreign_magic_pin_taps_never_stall_the_owner(one_mask: Sandbox, tmp_path: Path) -> None:
    """Issue 18, item 6: ownership is checked before "still working on your last tap", so a
    worker forging taps on someone else's assignment is refused as such, and never makes the
    owner's real taps bounce as busy."""
    box = one_mask
    _, samples = create_mask_project(box.db, tmp_path / "images", type="magic-pin", count=3, price=10)
    emu = box.emulator
    sim = SimWorker.create(emu, "w", "en")
    other = SimWorker.create(emu, "o", "en")
    for s in (sim, other):
        await s.start()
    screen = await _pin_screen(box, sim)
    other_screen = await _pin_screen(box, other)
    aid, mid = screen.assignment_id or 0, screen.message_id
    cell = best_cell(_sample(samples, box, aid))
    app = box.bots[0].app
    forged = [f"t:g:{aid}:{cell}", f"t:n:{aid}:0", f"t:t:{aid}:0", f"t:a:{aid}:1", f"t:k:{aid}:0", f"t:p:{aid}:{pick_value(0, 0)}"]
    app.pins_in_flight.add(aid)  # the owner's previous tap is being worked on
    try:
        for data in forged:
            assert (await press(box, other, other_screen.message_id, data=data))["text"] == t("refuse.not_yours", "en"), data
        assert (await press(box, sim, mid, data=f"t:n:{aid}:0"))["text"] == t("masks.refuse.busy", "en")  # the owner: busy
    finally:
        app.pins_in_flight.discard(aid)
    # a burst of foreign taps racing the owner's real tap: the owner's tap goes through
    burst = [forge_tap(box, other.user_id, other_screen.message_id, f"t:g:{aid}:{cell}") for _ in range(5)]
    real = await emu.tap(sim.user_id, mid, text=CELLS[cell])
    await emu.wait_for(lambda: all(emu.callback_answer(q) for q in [*burst, real]), timeout=WAIT)
    assert {emu.callback_answer(q)["text"] for q in burst} == {t("refuse.not_yours", "en")}  # type: ignore[index]
    assert not (emu.callback_answer(real) or {}).get("text")  # accepted, no refusal notice
    await emu.wait_for(lambda: _state(box, aid).rev == 1, timeout=WAIT)
    assert _state(box, other_screen.assignment_id or 0) == PinState()


async def test_magic_pin_double_taps_stale_and_forged(one_mask: Sandbox, tmp_path: Path) -> None:
    box = one_mask
    _, samples = create_mask_project(box.db, tmp_path / "images", type="magic-pin", count=3, price=10)
    emu = box.emulator
    sim = SimWorker.create(emu, "w", "en")
    other = SimWorker.create(emu, "o", "en")
    for s in (sim, other):
        await s.start()
    old = await _pin_screen(box, sim)
    screen = await _pin_screen(box, sim)  # "Get a task" again: a second message of the same lease
    assert screen.assignment_id == old.assignment_id and screen.message_id != old.message_id
    aid, mid = screen.assignment_id or 0, screen.message_id
    sample = _sample(samples, box, aid)
    cell = CELLS[best_cell(sample)]
    # double tap of a cell: one segmentation and one transition
    first, second = await asyncio.gather(emu.tap(sim.user_id, mid, text=cell), emu.tap(sim.user_id, mid, text=cell))
    answers = await emu.wait_for(
        lambda: (
            [emu.callback_answer(first), emu.callback_answer(second)]
            if emu.callback_answer(first) and emu.callback_answer(second)
            else None
        ),
        timeout=WAIT,
    )
    notices = {a.get("text") for a in answers}
    assert notices & {t("masks.refuse.busy", "en"), t("masks.refuse.stale", "en")}
    await emu.wait_for(lambda: t("masks.pin.keep", "en") in _texts(_message(box, sim, mid)), timeout=WAIT)
    assert _state(box, aid).rev == 1
    # the older message still shows the grid of revision 0: stale, nothing changes
    answer = await press(box, sim, old.message_id, text=cell)
    assert answer["text"] == t("masks.refuse.stale", "en")
    # another user forging a Keep for this assignment, and forged values
    other_screen = await _pin_screen(box, other)
    assert (await press(box, other, other_screen.message_id, data=f"t:k:{aid}:1"))["text"] == t("refuse.not_yours", "en")
    assert (await press(box, sim, mid, data=f"t:g:{aid}:-3"))["text"] == t("refuse.invalid", "en")
    assert (await press(box, sim, mid, data=f"t:k:{aid}:0"))["text"] == t("masks.refuse.stale", "en")
    assert (await press(box, sim, mid, data=f"t:a:{other_screen.assignment_id}:1"))["text"] == t("refuse.not_yours", "en")
    assert _state(box, aid).rev == 1 and _answers(box) == []
    # double Keep: one answer, paid once
    keep = t("masks.pin.keep", "en")
    k1, k2 = await asyncio.gather(emu.tap(sim.user_id, mid, text=keep), emu.tap(sim.user_id, mid, text=keep))
    answers = await emu.wait_for(
        lambda: [emu.callback_answer(k1), emu.callback_answer(k2)] if emu.callback_answer(k1) and emu.callback_answer(k2) else None,
        timeout=WAIT,
    )
    assert {a.get("text") for a in answers} & {t("refuse.already", "en"), t("masks.refuse.stale", "en"), t("masks.refuse.busy", "en")}
    assert len(_answers(box)) == 1
    with box.db.session() as s:
        assert account_balance(s, LABELING_EXPENSE) == -10
        assert ledger_total(s) == 0


async def test_restart_mid_pin_loses_nothing(one_mask: Sandbox, tmp_path: Path) -> None:
    box = one_mask
    sim, _, aid, mid, sample = await _pinned(box, tmp_path, "en", count=1)
    await press(box, sim, mid, text=CELLS[best_cell(sample)])
    before = _state(box, aid)
    await box.restart_bot()
    assert _state(box, aid) == before
    await press(box, sim, mid, text=t("masks.pin.add", "en"))
    await press(box, sim, mid, text=t("masks.pin.mode_remove", "en"))
    await box.restart_bot()
    # "Get a task" after the restart shows the same lease in the same phase (add, remove mode)
    resent = await sim.request_task()
    assert resent is not None and resent.assignment_id == aid
    assert "✔ " + t("masks.pin.mode_remove", "en") in [text for text, _ in resent.buttons]
    await press(box, sim, resent.message_id, text=CELLS[outside_cell(sample)])
    await press(box, sim, resent.message_id, text=t("masks.pin.keep", "en"))
    (answer,) = _answers(box)
    assert answer.value == "mask"
    assert coco_rle.mask_iou(coco_rle.decode(json.loads(answer.mask_rle or "")), true_mask(sample)) > 0.9


# ------------------------------------------------------------------ magic pin: the worker picks
@contextlib.asynccontextmanager
async def segmenter_sandbox(tmp_path: Path, backend: str) -> AsyncIterator[Sandbox]:
    """The sandbox with a plugged-in segmenter (an ``AUTOSEG_BACKEND`` value)."""
    box = await Sandbox.start(tmp_path, autoseg=AutosegSettings(AUTOSEG_BACKEND=backend))
    try:
        yield box
    finally:
        await box.close()
        autoseg.configure(None)  # the next test's segmenter comes from its own settings


@pytest.fixture
async def rings(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """Three known candidates per pin (discs around it), to test the picker."""
    async with segmenter_sandbox(tmp_path, "tests.masks.candidate_backend:Rings") as box:
        yield box


@pytest.fixture
async def one_mask(tmp_path: Path) -> AsyncIterator[Sandbox]:
    """The classical segmenter through ``segment`` alone: one mask per pin, shown with Keep."""
    async with segmenter_sandbox(tmp_path, "tests.masks.candidate_backend:SegmentOnly") as box:
        yield box


async def test_a_restart_lets_the_tap_being_segmented_finish(tmp_path: Path) -> None:
    """A restart while a tap is being segmented: the bot's shutdown waits for that tap, so the
    worker gets the outline (not "something went wrong"), the tap is counted once, and no HTTP
    session is opened after the bot's own was closed. Before, aiogram's shutdown closed the
    picture pool and the session under the running handler."""
    Held.started.clear()
    Held.release.clear()
    async with segmenter_sandbox(tmp_path, "tests.masks.candidate_backend:Held") as box:
        sim, _, aid, mid, sample = await _pinned(box, tmp_path, "en", count=2)
        emu, running = box.emulator, box.bots[0]
        before = emu.chat_version(sim.user_id)
        query = await emu.tap(sim.user_id, mid, text=CELLS[best_cell(sample)])
        assert await asyncio.to_thread(Held.started.wait, WAIT)
        stopping = asyncio.create_task(box.stop_bot())
        await asyncio.sleep(0.5)
        assert not stopping.done(), "the bot stopped while a tap was still being handled"
        Held.release.set()
        await asyncio.wait_for(stopping, WAIT)
        assert not (emu.callback_answer(query) or {}).get("text")  # answered, and not with an apology
        assert emu.chat_version(sim.user_id) > before  # the photo became the outline to confirm
        assert _state(box, aid).rev == 1
        session = running.bot.session._session  # aiogram's: a new one would have been opened after close
        assert session is None or session.closed
        await box.start_bot()  # and after the restart the worker carries on from the outline
        await press(box, sim, mid, text=t("masks.pin.keep", "en"))
        (answer,) = _answers(box)
        assert answer.value == "mask"
    Held.release.clear()


def _candidate_buttons(lang: str, count: int) -> list[str]:
    return [t("masks.pin.pick", lang, mark=CANDIDATE_MARKS[i], number=i + 1) for i in range(count)]


def _expected_ring(sample: SampleImage, cell: str, index: int) -> np.ndarray:
    """What the plugged-in segmenter gives for a pin on ``cell`` (the phone copy is the original here)."""
    w, h = _size(sample)
    x, y = cell_center(cell, w, h)
    return ring_masks((h, w), [(x, y, True)])[index]


async def test_magic_pin_three_candidates_pick_two_stores_that_mask_and_pays_once(rings: Sandbox, tmp_path: Path) -> None:
    box = rings
    sim, screen, aid, mid, sample = await _pinned(box, tmp_path, "en", count=2, price=20)
    cell = CELLS[best_cell(sample)]
    await press(box, sim, mid, text=cell)
    shown = _message(box, sim, mid)  # the same message, edited into the candidates
    assert t("masks.pin.hint_pick", "en") in (shown.caption or "")
    assert _texts(shown) == [
        *_candidate_buttons("en", 3),
        t("masks.pin.retry", "en"),
        t("masks.pin.add", "en"),
        t("masks.pin.none", "en"),
        t("task.skip", "en"),
        t("task.report", "en"),
    ]
    rows = shown.reply_markup["inline_keyboard"]
    assert [len(row) for row in rows[:2]] == [3, 2]  # 1 / 2 / 3 side by side, then the two ways to refine
    for row in rows:
        for button in row:
            data = button["callback_data"]
            assert len(data.encode()) <= 64 and TaskCb.unpack(data).id == aid
    state = _state(box, aid)
    assert state.phase == Phase.MASK and len(state.candidates) == 3
    for i, candidate in enumerate(state.candidates):
        assert np.array_equal(coco_rle.decode(candidate.rle), _expected_ring(sample, cell, i))
    # the picture: each candidate's outline in its own colour
    photo = _photo(box, shown.photo_file_id)
    for i, colour in enumerate(CANDIDATE_RGB):
        edge = _expected_ring(sample, cell, i) & ~cv2.erode(
            _expected_ring(sample, cell, i).astype(np.uint8), np.ones((5, 5), np.uint8)
        ).astype(bool)
        near = np.abs(photo[edge] - np.asarray(colour)).max(axis=1) < 60
        assert near.mean() > 0.5, (i, near.mean())

    nxt = await sim.tap(sim.screen() or screen, _candidate_buttons("en", 3)[1])
    assert nxt is not None and nxt.message_id == mid and nxt.assignment_id != aid
    (answer,) = _answers(box)
    assert answer.assignment_id == aid and answer.value == "mask" and answer.reward == 20
    assert answer.mask_rle == json.dumps(state.candidates[1].rle, separators=(",", ":"))  # exactly what was shown as 2
    assert np.array_equal(coco_rle.decode(json.loads(answer.mask_rle)), _expected_ring(sample, cell, 1))
    with box.db.session() as s:
        keys = list(s.execute(select(LedgerTxn.key).where(LedgerTxn.key == f"answer:{answer.id}")).scalars())
        assert keys == [f"answer:{answer.id}"]
        assert account_balance(s, LABELING_EXPENSE) == -20
        assert ledger_total(s) == 0


async def test_magic_pin_double_pick_pays_once_and_foreign_or_forged_picks_change_nothing(rings: Sandbox, tmp_path: Path) -> None:
    box = rings
    _, samples = create_mask_project(box.db, tmp_path / "images", type="magic-pin", count=3, price=10)
    emu = box.emulator
    sim = SimWorker.create(emu, "w", "en")
    other = SimWorker.create(emu, "o", "en")
    for s in (sim, other):
        await s.start()
    screen = await _pin_screen(box, sim)
    aid, mid = screen.assignment_id or 0, screen.message_id
    await press(box, sim, mid, text=CELLS[best_cell(_sample(samples, box, aid))])
    rev = _state(box, aid).rev
    other_screen = await _pin_screen(box, other)
    app = box.bots[0].app

    # another worker forging a pick of this assignment: refused as not theirs, even while the
    # owner's previous tap is still being worked on (ownership is checked before "busy")
    pick2 = f"t:p:{aid}:{pick_value(rev, 1)}"
    app.pins_in_flight.add(aid)
    try:
        assert (await press(box, other, other_screen.message_id, data=pick2))["text"] == t("refuse.not_yours", "en")
        assert (await press(box, sim, mid, data=pick2))["text"] == t("masks.refuse.busy", "en")
    finally:
        app.pins_in_flight.discard(aid)
    # forged and stale values on the owner's own message
    assert (await press(box, sim, mid, data=f"t:p:{aid}:-1"))["text"] == t("refuse.invalid", "en")
    assert (await press(box, sim, mid, data=f"t:p:{aid}:{pick_value(rev - 1, 1)}"))["text"] == t("masks.refuse.stale", "en")
    assert (await press(box, sim, mid, data="t:p:424242:4"))["text"] == t("refuse.unknown", "en")
    assert (await press(box, other, other_screen.message_id, data=f"t:k:{aid}:{rev}"))["text"] == t("refuse.not_yours", "en")
    assert _answers(box) == [] and _state(box, aid).rev == rev

    # double tap of pick 3: one answer, paid once
    three = _candidate_buttons("en", 3)[2]
    k1, k2 = await asyncio.gather(emu.tap(sim.user_id, mid, text=three), emu.tap(sim.user_id, mid, text=three))
    notices = await emu.wait_for(
        lambda: [emu.callback_answer(k1), emu.callback_answer(k2)] if emu.callback_answer(k1) and emu.callback_answer(k2) else None,
        timeout=WAIT,
    )
    assert {a.get("text") for a in notices} & {t("refuse.already", "en"), t("masks.refuse.busy", "en")}
    (answer,) = _answers(box)
    assert answer.assignment_id == aid and answer.mask_rle == json.dumps(_state(box, aid).candidates[2].rle, separators=(",", ":"))
    with box.db.session() as s:
        assert account_balance(s, LABELING_EXPENSE) == -10
        assert ledger_total(s) == 0
    # the other worker's own task was never touched
    assert _state(box, other_screen.assignment_id or 0) == PinState()


async def test_magic_pin_refine_candidates_with_a_point_then_pick(rings: Sandbox, tmp_path: Path) -> None:
    """Add a point from the candidates: the grid over them, then new candidates from both points."""
    box = rings
    sim, _, aid, mid, sample = await _pinned(box, tmp_path, "ko", count=1)
    first, background = CELLS[best_cell(sample)], CELLS[outside_cell(sample)]
    await press(box, sim, mid, text=first)
    await press(box, sim, mid, text=t("masks.pin.add", "ko"))
    assert _texts(_message(box, sim, mid))[:16] == list(CELLS)
    await press(box, sim, mid, text=t("masks.pin.mode_remove", "ko"))
    await press(box, sim, mid, text=background)
    state = _state(box, aid)
    assert state.phase == Phase.MASK and state.points == [(first, True), (background, False)] and len(state.candidates) == 3
    w, h = _size(sample)
    expected = ring_masks((h, w), [(*cell_center(first, w, h), True), (*cell_center(background, w, h), False)])
    assert all(np.array_equal(coco_rle.decode(c.rle), m) for c, m in zip(state.candidates, expected))
    assert _texts(_message(box, sim, mid))[:3] == _candidate_buttons("ko", 3)
    await press(box, sim, mid, text=_candidate_buttons("ko", 3)[0])
    (answer,) = _answers(box)
    assert np.array_equal(coco_rle.decode(json.loads(answer.mask_rle or "")), expected[0])


def _edge(mask: np.ndarray) -> np.ndarray:
    return mask & ~cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)


async def test_magic_pin_fix_outline_three_with_a_point_then_pick_it(tmp_path: Path) -> None:
    """#16: "Add a point" asks which outline to fix; the grid shows that one alone, in its
    colour; the point refines it; the pick stores it, paid once."""
    async with segmenter_sandbox(tmp_path, "tests.masks.candidate_backend:PickedRings") as box:
        sim, _, aid, mid, sample = await _pinned(box, tmp_path, "ko", count=2, price=30)
        pin, background = CELLS[best_cell(sample)], CELLS[outside_cell(sample)]
        await press(box, sim, mid, text=pin)
        candidates_photo = _message(box, sim, mid).photo_file_id

        await press(box, sim, mid, text=t("masks.pin.add", "ko"))
        asked = _message(box, sim, mid)
        assert t("masks.pin.hint_choose", "ko") in (asked.caption or "")
        assert asked.photo_file_id == candidates_photo  # the numbers to choose from stay in view
        fixes = [t("masks.pin.fix", "ko", mark=CANDIDATE_MARKS[i], number=i + 1) for i in range(3)]
        assert _texts(asked) == [*fixes, t("masks.pin.back", "ko")]
        # a forged fix on the owner's message changes nothing
        assert (await press(box, sim, mid, data=f"t:f:{aid}:-1"))["text"] == t("refuse.invalid", "ko")
        assert _state(box, aid).phase == Phase.CHOOSE

        await press(box, sim, mid, text=fixes[2])
        grid = _message(box, sim, mid)
        assert _texts(grid)[:16] == list(CELLS)
        assert t("masks.pin.fixing", "ko", mark=CANDIDATE_MARKS[2], number=3) in (grid.caption or "")
        photo = _photo(box, grid.photo_file_id)
        third, first = _expected_ring(sample, pin, 2), _expected_ring(sample, pin, 0)
        in_colour = np.abs(photo - np.asarray(CANDIDATE_RGB[2])).max(axis=2) < 60
        assert in_colour[_edge(third)].mean() > 0.5  # outline 3, in its own colour
        others = np.abs(photo - np.asarray(CANDIDATE_RGB[0])).max(axis=2) < 60
        assert others[_edge(first)].mean() < 0.1  # outline 1 is not drawn

        await press(box, sim, mid, text=t("masks.pin.mode_remove", "ko"))
        await press(box, sim, mid, text=background)
        state = _state(box, aid)
        assert state.phase == Phase.MASK and state.base == 2 and state.points == [(pin, True), (background, False)]
        w, h = _size(sample)
        expected = ring_masks((h, w), [(*cell_center(pin, w, h), True), (*cell_center(background, w, h), False)])
        assert np.array_equal(coco_rle.decode(state.candidates[0].rle), expected[2])  # outline 3, refined, now first

        k1, k2 = await asyncio.gather(
            box.emulator.tap(sim.user_id, mid, text=_candidate_buttons("ko", 3)[0]),
            box.emulator.tap(sim.user_id, mid, text=_candidate_buttons("ko", 3)[0]),
        )
        await box.emulator.wait_for(lambda: box.emulator.callback_answer(k1) and box.emulator.callback_answer(k2), timeout=WAIT)
        (answer,) = _answers(box)
        assert answer.assignment_id == aid and answer.reward == 30
        assert np.array_equal(coco_rle.decode(json.loads(answer.mask_rle or "")), expected[2])
        with box.db.session() as s:
            assert account_balance(s, LABELING_EXPENSE) == -30
            assert ledger_total(s) == 0


async def test_magic_pin_two_candidates_offer_two_numbers(tmp_path: Path) -> None:
    async with segmenter_sandbox(tmp_path, "tests.masks.candidate_backend:TwoRings") as box:
        create_mask_project(box.db, tmp_path / "images", type="magic-pin", count=1)
        sim = SimWorker.create(box.emulator, "w", "en")
        await sim.start()
        screen = await _pin_screen(box, sim)
        await press(box, sim, screen.message_id, text=CELLS[5])
        shown = _message(box, sim, screen.message_id)
        assert _texts(shown)[:3] == [*_candidate_buttons("en", 2), t("masks.pin.retry", "en")]
        forged = f"t:p:{screen.assignment_id}:{pick_value(_state(box, screen.assignment_id or 0).rev, 2)}"
        assert (await press(box, sim, screen.message_id, data=forged))["text"] == t("refuse.invalid", "en")
        assert _answers(box) == []


async def test_keep_buttons_and_states_from_before_candidates_still_work(one_mask: Sandbox, tmp_path: Path) -> None:
    """A message drawn by the previous version (Keep with v = rev, state version 1 with one
    "mask") is answered after an upgrade, with that mask."""
    box = one_mask
    create_mask_project(box.db, tmp_path / "images", type="magic-pin", count=2)
    sim = SimWorker.create(box.emulator, "w", "en")
    await sim.start()
    screen = await _pin_screen(box, sim)
    aid, mid = screen.assignment_id or 0, screen.message_id
    await press(box, sim, mid, text=CELLS[5])
    state = _state(box, aid)
    old = {"v": 1, "rev": state.rev, "phase": "mask", "points": [[c, p] for c, p in state.points], "positive": True}
    old |= {"mask": state.candidates[0].rle, "area": state.candidates[0].area}
    with box.db.session() as s:
        s.execute(update(Assignment).where(Assignment.id == aid).values(state_json=json.dumps(old)))  # type: ignore[arg-type]
    assert (await press(box, sim, mid, data=f"t:k:{aid}:{state.rev + 1}"))["text"] == t("masks.refuse.stale", "en")
    await press(box, sim, mid, data=f"t:k:{aid}:{state.rev}")
    (answer,) = _answers(box)
    assert answer.assignment_id == aid and answer.mask_rle == json.dumps(state.candidates[0].rle, separators=(",", ":"))
