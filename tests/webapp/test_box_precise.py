"""✏️ Precise on a confirm-box task: the Mini App shows the model's box, the worker drags its
corners onto the object, and the drawn box is the answer ("wrong_box" with the fix), through
the same exactly-once path as a button in the chat. Over real HTTP, then in headless Chromium
at 360×640 (English) and 390×844 (Korean) with touch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select
from sqlmodel import col

from bot.i18n import t
from bot.sample_boxes import WRONG_BOX, Pred
from bot.sandbox import Sandbox
from bot.tasks import datasets
from bot.tasks import export as exporting
from bot.tasks.boxes import box_iou, parse_fixed_box
from bot.tasks.models import Answer, Assignment
from bot.wallet.models import LedgerEntry
from tests.boxes.helpers import box_project, dataset, task_truth
from tests.webapp.browser import phone, pinch_image, screenshot, state, wait_until
from tests.webapp.helpers import WAIT, Opened, call, counts, open_task


@asynccontextmanager
async def box_sandbox(
    workdir: Path, *, images: int = 2, per_image: int = 2, **project: Any
) -> AsyncIterator[tuple[Sandbox, dict[int, Pred]]]:
    """A sandbox serving the Mini App, with a confirm-box project whose every box is wrong
    (shifted off its shape, or grown around it), at 640×480."""
    (workdir / "sandbox").mkdir(parents=True, exist_ok=True)
    box = await Sandbox.start(workdir / "sandbox", webapp=True)
    try:
        source, preds = dataset(
            workdir / "ds", "coco", images=images, per_image=per_image, size=(640, 480), shares=(1.0, 0.0), small_every=0
        )
        project.setdefault("price", 12)
        created = box_project(box.db, **project)
        datasets.load(box.db, created.id, source, media_dir=None, copy=False)  # type: ignore[arg-type]
        truth = task_truth(box.db, preds)
        assert all(p.truth == WRONG_BOX for p in truth.values())
        yield box, truth
    finally:
        await box.close()


def _task_of(box: Sandbox, assignment_id: int) -> int:
    with box.db.session() as s:
        assignment = s.get(Assignment, assignment_id)
        assert assignment is not None
        return assignment.task_id


def _fractions(b: tuple[float, float, float, float], w: int, h: int) -> list[float]:
    return [b[0] / w, b[1] / h, (b[0] + b[2]) / w, (b[1] + b[3]) / h]


def _answers(box: Sandbox) -> list[tuple[int, str, str | None, int]]:
    with box.db.session() as s:
        return [(a.assignment_id, a.value, a.box_json, a.reward) for a in s.execute(select(Answer).order_by(Answer.id)).scalars()]


async def _next(opened: Opened, box: Sandbox, name: str) -> Opened:
    """The worker's task message now shows the next task: open the Mini App on it again."""
    await box.emulator.wait_for(
        lambda: opened.sim.screen() is not None and opened.sim.screen().assignment_id != opened.assignment_id, timeout=WAIT
    )  # type: ignore[union-attr]
    screen = opened.sim.screen()
    assert screen is not None
    again = box.emulator.open_web_app(opened.sim.user_id, screen.message_id)
    return Opened(opened.sim, screen, again["url"], again["init_data"])


# ------------------------------------------------------------------ over HTTP
async def test_box_task_in_the_mini_app_answers_once_with_the_drawn_box(tmp_path: Path) -> None:
    async with box_sandbox(tmp_path, images=2, per_image=2) as (box, truth):
        opened = await open_task(box, "w")
        message = box.emulator.last_message(opened.sim.user_id)
        assert message is not None
        texts = [b["text"] for row in message.reply_markup["inline_keyboard"] for b in row if "web_app" in b]
        assert texts == [t("masks.webapp.button", "en")]  # the chat's box task has ✏️ Precise

        aid = opened.assignment_id
        pred = truth[_task_of(box, aid)]
        status, body = await call(opened, "GET", f"task?a={aid}")
        assert status == 200
        task = body["task"]
        assert task["type"] == "confirm-box" and task["object"] == pred.label
        assert task["image"] == {"w": 640, "h": 480, "url": f"api/image?a={aid}"}
        x, y, w, h = pred.box
        assert task["box"] == pytest.approx([x, y, x + w, y + h], abs=0.01)
        assert len(task["others"]) == 1  # the image's other predicted box, for context

        status, refused = await call(opened, "POST", "segment", {"a": aid, "points": [[0.5, 0.5, True]]})
        assert status == 400 and refused["error"] == "bad_input"

        # forged boxes are refused and change nothing
        before = counts(box)
        for bad in ([0.1, 0.2, 0.3], ["a", 0, 1, 1], [0.1, 0.1, 0.102, 0.102], [-0.5, 0, 1, 1], [0, 0, 2, 1], "box", {"x": 1}):
            status, refused = await call(opened, "POST", "answer", {"a": aid, "action": "keep", "box": bad})
            assert status == 400 and refused["error"] == "bad_input", (bad, refused)
        status, refused = await call(opened, "POST", "answer", {"a": aid, "action": "paint"})
        assert status == 400
        assert counts(box) == before

        # Keep with the true box: "wrong_box" with the drawn box, paid once, the chat moves on
        drawn = _fractions(pred.true_box, 640, 480)
        status, saved = await call(opened, "POST", "answer", {"a": aid, "action": "keep", "box": drawn})
        assert status == 200 and saved["reward"] == 12
        (row,) = _answers(box)
        assert row[:2] == (aid, "wrong_box") and row[3] == 12
        fixed = parse_fixed_box(row[2])
        assert fixed is not None and box_iou(fixed, pred.true_box) > 0.99
        after = counts(box)
        status, _ = await call(opened, "POST", "answer", {"a": aid, "action": "keep", "box": drawn})
        assert status == 409 and counts(box) == after  # a replay: answered once, paid once
        assert saved["next"] is not None and saved["next"]["type"] == "confirm-box"

        # the box as it came (a finger's jitter is no fix): "correct", no box stored
        second = await _next(opened, box, "w")
        p2 = truth[_task_of(box, second.assignment_id)]
        jitter = (p2.box[0] + 0.4, p2.box[1] - 0.3, p2.box[2], p2.box[3] + 0.5)
        status, _ = await call(second, "POST", "answer", {"a": second.assignment_id, "action": "keep", "box": _fractions(jitter, 640, 480)})
        assert status == 200
        third = await _next(second, box, "w")
        status, _ = await call(third, "POST", "answer", {"a": third.assignment_id, "action": "class"})
        assert status == 200
        fourth = await _next(third, box, "w")
        status, _ = await call(fourth, "POST", "answer", {"a": fourth.assignment_id, "action": "none"})
        assert status == 200
        assert [(a, v, b) for a, v, b, _ in _answers(box)][1:] == [
            (second.assignment_id, "correct", None),
            (third.assignment_id, "wrong_class", None),
            (fourth.assignment_id, "wrong_box", None),
        ]
        with box.db.session() as s:
            credits = [e.amount for e in s.execute(select(LedgerEntry).where(col(LedgerEntry.amount) > 0)).scalars()]
        assert credits.count(12) == 4

        # the verified set: the drawn box replaces the model's, read back with pycocotools
        from pycocotools.coco import COCO

        out = tmp_path / "verified.json"
        exporting.export(box.db, 1, what="results", fmt="coco", out=out, secret="s", include_rejected=True)
        anns = {a["crowd"]["verdict"]: a for a in COCO(str(out)).dataset["annotations"]}
        assert sorted(anns) == ["accepted", "corrected", "rejected"]  # wrong_class and a box nobody drew: rejected
        assert box_iou(tuple(anns["corrected"]["bbox"]), pred.true_box) > 0.99
        assert anns["corrected"]["crowd"]["model_bbox"] == pytest.approx(list(pred.box), abs=0.01)


# ------------------------------------------------------------------ in the browser
def _drag(driver: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    from tests.webapp.browser import drag_image

    drag_image(driver, start, end)


def _box_flow(url: str, true_box: tuple[float, float, float, float], lang: str, size: tuple[int, int]) -> dict[str, Any]:
    driver = phone(*size)
    try:
        driver.get(url)
        wait_until(driver, lambda d: state(d) == "ready", what="the photo")
        opened = driver.execute_script("return window.__miniapp.task()")
        first = screenshot(driver, f"box-precise-{lang}-1-opened")
        layout = driver.execute_script(
            """const r = id => { const e = document.getElementById(id); const b = e.getBoundingClientRect();
                                  return [b.left, b.top, b.width, b.height, e.hidden, e.textContent]; };
               return {keep: r('keep'), none: r('none'), cls: r('class'), skip: r('skip'), undo: r('undo'), mode: r('mode'),
                       hint: document.getElementById('hint').textContent};"""
        )
        x0, y0, x1, y1 = opened["box"]
        # two fingers zoom (also when one lands on the box) and leave the box where it was
        pinch_image(driver, ((x0 + x1) / 2, (y0 + y1) / 2), 60, 160)
        pinched = driver.execute_script("return window.__miniapp.task()")
        pinch_image(driver, ((x0 + x1) / 2, (y0 + y1) / 2), 160, 60)  # and back out, to drag at the first scale
        tx0, ty0, tx1, ty1 = true_box[0], true_box[1], true_box[0] + true_box[2], true_box[1] + true_box[3]
        # move the box onto the object, then pull its corners onto the object's
        _drag(driver, ((x0 + x1) / 2, (y0 + y1) / 2), ((tx0 + tx1) / 2, (ty0 + ty1) / 2))
        moved = driver.execute_script("return window.__miniapp.task().box")
        _drag(driver, (moved[0], moved[1]), (tx0, ty0))
        _drag(driver, (moved[2], moved[3]), (tx1 + 12, ty1 + 10))  # too far: pulled back next
        too_big = driver.execute_script("return window.__miniapp.task().box")
        _drag(driver, (too_big[2], too_big[3]), (tx1, ty1))
        fixed = driver.execute_script("return window.__miniapp.task()")
        after = {
            "hint": driver.find_element("id", "hint").text,
            "keep": driver.find_element("id", "keep").text,
            "undo": driver.find_element("id", "undo").is_enabled(),
        }
        shot = screenshot(driver, f"box-precise-{lang}-2-fixed")
        # undo once and redo the last corner: the history works
        driver.find_element("id", "undo").click()
        undone = driver.execute_script("return window.__miniapp.task().box")
        _drag(driver, (undone[2], undone[3]), (tx1, ty1))
        driver.find_element("id", "keep").click()
        wait_until(driver, lambda d: state(d) == "saved", what="saved")
        notice = driver.find_element("id", "notice-text").text
        wait_until(
            driver, lambda d: state(d) == "ready" and d.execute_script("return window.__miniapp.task().boxChanged") is False, what="next"
        )
        following = driver.execute_script("return window.__miniapp.task()")
        return {
            "opened": opened,
            "pinched": pinched,
            "first": first,
            "layout": layout,
            "moved": moved,
            "fixed": fixed,
            "after": after,
            "shot": shot,
            "undone": undone,
            "too_big": too_big,
            "notice": notice,
            "next": following,
        }
    finally:
        driver.quit()


@pytest.mark.parametrize(("lang", "size"), [("en", (360, 640)), ("ko", (390, 844))])
async def test_drag_the_box_onto_the_object_in_the_browser(tmp_path: Path, lang: str, size: tuple[int, int]) -> None:
    async with box_sandbox(tmp_path, images=2, per_image=1, price=15) as (box, truth):
        opened = await open_task(box, "Jun", lang=lang)
        aid = opened.assignment_id
        pred = truth[_task_of(box, aid)]
        before = box.emulator.chat_version(opened.sim.user_id)
        seen = await asyncio.to_thread(_box_flow, opened.url, pred.true_box, lang, size)

        assert seen["opened"]["type"] == "confirm-box" and seen["opened"]["boxChanged"] is False
        assert seen["pinched"]["scale"] > seen["opened"]["scale"] * 1.5 and seen["pinched"]["box"] == seen["opened"]["box"]
        layout = seen["layout"]
        assert layout["hint"] == t("masks.webapp.hint_box", lang)
        assert layout["keep"][5] == t("masks.webapp.box_keep", lang) and layout["mode"][4] is True  # no ➕/➖ for a box
        assert layout["cls"][4] is False and layout["cls"][5] == t("masks.webapp.box_class", lang)
        assert layout["none"][5] == t("masks.webapp.box_none", lang)
        for name in ("keep", "none", "cls", "skip", "undo"):
            left, top, width, height = layout[name][:4]
            assert height >= 44 and top + height <= size[1] and left >= 0 and left + width <= size[0], (name, layout[name])
        assert seen["fixed"]["boxChanged"] is True
        assert seen["after"] == {"hint": t("masks.webapp.hint_box_changed", lang), "keep": t("masks.webapp.box_save", lang), "undo": True}
        fx0, fy0, fx1, fy1 = seen["fixed"]["box"]
        assert box_iou((fx0, fy0, fx1 - fx0, fy1 - fy0), pred.true_box) > 0.85, (seen["fixed"]["box"], pred.true_box)
        assert seen["undone"] == seen["too_big"] != seen["fixed"]["box"]  # undo: one drag back
        assert seen["notice"] == t("masks.webapp.saved", lang, reward="₩15")

        # the picture: the yellow box is drawn where the worker put it
        shot = np.asarray(PILImage.open(seen["shot"]).convert("RGB"), dtype=np.int16)
        assert shot.shape[:2] == (size[1] * 2, size[0] * 2)
        yellow = (shot[:, :, 0] > 200) & (shot[:, :, 1] > 170) & (shot[:, :, 2] < 90)
        assert yellow.sum() > 500, "no box drawn"

        # stored once with the drawn box, paid once; the chat moved on to the next task
        (row,) = _answers(box)
        assert row[:2] == (aid, "wrong_box") and row[3] == 15
        drawn = parse_fixed_box(row[2])
        assert drawn is not None and box_iou(drawn, pred.true_box) > 0.85, (drawn, pred.true_box)
        with box.db.session() as s:
            assert [e.amount for e in s.execute(select(LedgerEntry).where(col(LedgerEntry.amount) > 0)).scalars()].count(15) == 1
        await box.emulator.wait_for(lambda: box.emulator.chat_version(opened.sim.user_id) > before, timeout=WAIT)
        screen = opened.sim.screen()
        assert screen is not None and screen.message_id == opened.screen.message_id and screen.assignment_id != aid
        assert seen["next"]["assignment_id"] == screen.assignment_id and seen["next"]["type"] == "confirm-box"
        assert json.loads(row[2] or "null") is not None
