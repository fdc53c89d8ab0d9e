"""The Mini App in a real browser (headless Chromium, 360×640, touch): a worker opens it from
the ✏️ Precise button, taps the object, sees the outline, keeps it; and a page opened with
launch data that cannot be trusted shows why and changes nothing.

The browser is driven from a thread (selenium blocks) while this test's event loop runs the
emulator, the bot and the page's server. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select

from bot.autoseg import rle as coco_rle
from bot.i18n import t
from bot.sample import true_mask
from bot.tasks.models import Answer, Assignment, AssignmentStatus
from bot.wallet.models import LedgerEntry
from tests.webapp.browser import phone, screenshot, state, tap_image, wait_until
from tests.webapp.helpers import WAIT, counts, open_task, sample_of, truth_of, webapp_sandbox
from tests.webapp.test_miniapp_api import deepest_point, pins_on, two_points_on


def _keep_flow(url: str, point: tuple[float, float], shots: str) -> dict[str, Any]:
    driver = phone()
    try:
        driver.get(url)
        wait_until(driver, lambda d: state(d) == "ready", what="the photo")
        screenshot(driver, f"{shots}-1-opened")
        layout = driver.execute_script(
            """const r = id => { const b = document.getElementById(id).getBoundingClientRect();
                                  return [b.left, b.top, b.width, b.height]; };
               return {keep: r('keep'), none: r('none'), skip: r('skip'), undo: r('undo'), mode: r('mode'),
                       stage: r('stage'), vw: innerWidth, vh: innerHeight,
                       keepText: document.getElementById('keep').textContent,
                       keepDisabled: document.getElementById('keep').disabled,
                       question: document.getElementById('question').textContent};"""
        )
        tap_image(driver, *point)
        wait_until(driver, lambda d: state(d) == "mask", what="the outline")
        probe = driver.execute_script("return {task: window.__miniapp.task(), timings: window.__miniapp.timings}")
        path = screenshot(driver, f"{shots}-2-mask")
        driver.find_element("id", "keep").click()
        wait_until(driver, lambda d: state(d) == "saved", what="saved")
        notice = driver.find_element("id", "notice-text").text
        screenshot(driver, f"{shots}-3-saved")
        # the app loads the next task on its own
        wait_until(driver, lambda d: state(d) == "ready" and d.execute_script("return window.__miniapp.task().inputs") == 0, what="next")
        following = driver.execute_script("return window.__miniapp.task()")
        return {"layout": layout, "probe": probe, "mask_shot": path, "notice": notice, "next": following}
    finally:
        driver.quit()


async def test_tap_keep_in_the_browser(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, count=3, price=20) as (box, samples):
        opened = await open_task(box, "민지", lang="ko")
        aid = opened.assignment_id
        truth = truth_of(box, samples, aid)
        fx, fy = deepest_point(truth)
        point = (fx * 319, fy * 239)
        before = box.emulator.chat_version(opened.sim.user_id)
        seen = await asyncio.to_thread(_keep_flow, opened.url, point, "keep-ko")

        layout = seen["layout"]
        assert (layout["vw"], layout["vh"]) == (360, 640)
        assert layout["keepText"] == t("masks.webapp.keep", "ko") and layout["keepDisabled"] is True  # nothing to keep yet
        # one thumb: the answer buttons are big and in the lower part of the screen, all on screen
        for name in ("keep", "none", "skip", "undo", "mode"):
            left, top, width, height = layout[name]
            assert height >= 44 and top + height <= 640 and left >= 0 and left + width <= 360, (name, layout[name])
            assert top > 640 * 0.55, (name, top)
        assert layout["keep"][2] >= 300  # the main action spans the screen
        assert layout["stage"][3] >= 250  # the photo gets most of the height
        assert seen["probe"]["task"]["assignment_id"] == aid and seen["probe"]["task"]["candidates"] >= 1
        assert seen["probe"]["timings"] and seen["probe"]["timings"][0]["ms"] > 0
        assert seen["notice"] == t("masks.webapp.saved", "ko", reward="₩20")

        # the screenshot shows the outline over the object: tinted pixels on the object
        shot = np.asarray(PILImage.open(seen["mask_shot"]).convert("RGB"), dtype=np.int16)
        assert shot.shape[:2] == (1280, 720)
        blue = (shot[:, :, 2] - shot[:, :, 0]) > 60
        assert blue.sum() > 2000, "no outline drawn"

        # stored once, paid once, the mask fits, and the chat moved on to the next task
        with box.db.session() as s:
            answers = list(s.execute(select(Answer)).scalars())
            credits = s.execute(select(LedgerEntry).where(LedgerEntry.amount > 0)).scalars().all()
            status = s.get(Assignment, aid).status  # type: ignore[union-attr]
        assert [(a.assignment_id, a.value, a.reward) for a in answers] == [(aid, "mask", 20)]
        assert status == AssignmentStatus.ANSWERED
        assert len([c for c in credits if c.amount == 20]) == 1
        iou = coco_rle.mask_iou(coco_rle.decode(json.loads(answers[0].mask_rle or "")), truth)
        assert iou >= 0.85, iou
        await box.emulator.wait_for(lambda: box.emulator.chat_version(opened.sim.user_id) > before, timeout=WAIT)
        screen = opened.sim.screen()
        assert screen is not None and screen.message_id == opened.screen.message_id and screen.assignment_id != aid
        assert seen["next"]["assignment_id"] == screen.assignment_id


def _refused_flow(url: str, shots: str) -> dict[str, Any]:
    driver = phone()
    try:
        driver.get(url)
        wait_until(driver, lambda d: state(d) == "error", what="the refusal")
        notice = driver.find_element("id", "notice-text").text
        screenshot(driver, shots)
        return {"notice": notice, "visible": driver.find_element("id", "notice").is_displayed()}
    finally:
        driver.quit()


async def test_untrusted_launch_data_is_refused_in_the_browser(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, count=3) as (box, _):
        mine = await open_task(box, "mine", lang="en")
        other = await open_task(box, "other", lang="en")
        before = counts(box)
        expired = box.emulator.open_web_app(mine.sim.user_id, mine.screen.message_id, auth_date=int(time.time()) - 2 * 86400)
        forged = mine.url.replace("auth_date%3D", "auth_date%3D1")  # any change breaks the signature
        assert forged != mine.url
        foreign = other.url.split("?")[0] + f"?a={mine.assignment_id}#" + other.url.split("#", 1)[1]
        results = {
            "expired": await asyncio.to_thread(_refused_flow, expired["url"], "refused-expired"),
            "forged": await asyncio.to_thread(_refused_flow, forged, "refused-forged"),
            "foreign": await asyncio.to_thread(_refused_flow, foreign, "refused-foreign"),
            "no-launch-data": await asyncio.to_thread(_refused_flow, mine.page, "refused-plain"),
        }
        for name in ("expired", "forged"):
            assert results[name]["visible"] and results[name]["notice"] == t("masks.webapp.unauthorized", "en"), results[name]
        # no launch data, no user: the browser's language (ko-KR here)
        assert results["no-launch-data"]["notice"] == t("masks.webapp.unauthorized", "ko")
        assert results["foreign"]["notice"] == t("masks.webapp.forbidden", "en")
        assert counts(box) == before


def _confirm_flow(url: str) -> dict[str, Any]:
    driver = phone()
    try:
        driver.get(url)
        wait_until(driver, lambda d: state(d) == "ready", what="the photo")
        path = screenshot(driver, "confirm-en-1-opened")
        hint = driver.find_element("id", "hint").text
        enabled = driver.find_element("id", "keep").is_enabled()
        driver.find_element("id", "keep").click()
        wait_until(driver, lambda d: state(d) == "saved", what="saved")
        return {"shot": path, "hint": hint, "keep_enabled": enabled}
    finally:
        driver.quit()


async def test_confirm_mask_opens_on_the_existing_mask(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, type="confirm-mask", count=1) as (box, _):
        opened = await open_task(box, "Sam", lang="en")
        seen = await asyncio.to_thread(_confirm_flow, opened.url)
        assert seen["hint"] == t("masks.webapp.hint_confirm", "en") and seen["keep_enabled"]
        shot = np.asarray(PILImage.open(seen["shot"]).convert("RGB"), dtype=np.int16)
        assert ((shot[:, :, 2] - shot[:, :, 0]) > 60).sum() > 2000, "the task's mask is not drawn"
        with box.db.session() as s:
            assert [(a.value, a.mask_rle) for a in s.execute(select(Answer)).scalars()] == [("yes", None)]


def _box_undo_none_flow(url: str, bbox: tuple[int, int, int, int], outside: tuple[float, float]) -> dict[str, Any]:
    from tests.webapp.browser import drag_image

    driver = phone()
    try:
        driver.get(url)
        wait_until(driver, lambda d: state(d) == "ready", what="the photo")
        x0, y0, x1, y1 = bbox
        drag_image(driver, (x0 - 6, y0 - 6), (x1 + 6, y1 + 6))
        wait_until(driver, lambda d: state(d) == "mask", what="the box's outline")
        after_box = driver.execute_script("return window.__miniapp.task()")
        screenshot(driver, "box-en-1-mask")
        driver.find_element("id", "mode").click()  # ➖: the next tap removes area
        mode_text = driver.find_element("id", "mode").text
        tap_image(driver, *outside)
        wait_until(driver, lambda d: state(d) == "mask" and d.execute_script("return window.__miniapp.task().inputs") == 2, what="➖")
        screenshot(driver, "box-en-2-negative")
        driver.find_element("id", "undo").click()
        driver.find_element("id", "undo").click()
        wait_until(driver, lambda d: d.execute_script("return window.__miniapp.task().inputs") == 0, what="undo")
        undone = driver.execute_script("return window.__miniapp.task()")
        keep_enabled = driver.find_element("id", "keep").is_enabled()
        driver.find_element("id", "none").click()
        wait_until(driver, lambda d: state(d) == "saved", what="saved")
        return {"after_box": after_box, "mode_text": mode_text, "undone": undone, "keep_enabled": keep_enabled}
    finally:
        driver.quit()


async def test_box_negative_undo_and_no_such_object(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, count=1) as (box, samples):
        opened = await open_task(box, "Alex", lang="en")
        sample = sample_of(box, samples, opened.assignment_id)
        truth = true_mask(sample)
        ys, xs = np.nonzero(~truth)
        far = int(np.argmax((xs - truth.shape[1] / 2) ** 2 + (ys - truth.shape[0] / 2) ** 2))
        seen = await asyncio.to_thread(_box_undo_none_flow, opened.url, sample.bbox, (float(xs[far]), float(ys[far])))
        assert seen["after_box"]["inputs"] == 1 and seen["after_box"]["candidates"] >= 1
        assert seen["mode_text"] == t("masks.webapp.remove_mode", "en")
        assert seen["undone"]["inputs"] == 0 and seen["undone"]["candidates"] == 0 and not seen["keep_enabled"]
        with box.db.session() as s:
            assert [(a.value, a.reward) for a in s.execute(select(Answer)).scalars()] == [("none", 10)]


def _second_tap_flow(url: str, first: tuple[float, float], second: tuple[float, float], shots: str) -> dict[str, Any]:
    driver = phone()
    try:
        driver.get(url)
        wait_until(driver, lambda d: state(d) == "ready", what="the photo")
        tap_image(driver, *first)
        wait_until(driver, lambda d: state(d) == "mask", what="the first outline")
        first_chips = len(driver.find_elements("css selector", "#candidates .cand"))
        undo_width = driver.find_element("id", "undo").rect["width"]
        # every state of the numbered row the worker can see (one record per rendered change)
        driver.execute_script(
            "window.__rows = []; var row = document.getElementById('candidates');"
            "new MutationObserver(function () { window.__rows.push({ children: row.children.length,"
            " slots: row.querySelectorAll('.cand-slot').length,"
            " undo: document.getElementById('undo').getBoundingClientRect().width }); })"
            ".observe(row, { childList: true });"
        )
        tap_image(driver, *second)
        wait_until(driver, lambda d: len(d.execute_script("return window.__miniapp.timings")) == 2, what="the second outline")
        at_second = driver.execute_script("return window.__miniapp.timings[1]")
        # the alternatives follow on their own: numbered buttons appear
        chips = wait_until(driver, lambda d: d.find_elements("css selector", "#candidates .cand"), what="the alternatives")
        rows = driver.execute_script("return window.__rows")
        screenshot(driver, f"{shots}-alternatives")
        pick = len(chips) - 1
        chips[pick].click()
        checked = [c.get_attribute("aria-checked") for c in driver.find_elements("css selector", "#candidates .cand")]
        areas = driver.execute_script("return window.__miniapp.task().areas")
        driver.find_element("id", "keep").click()
        wait_until(driver, lambda d: state(d) == "saved", what="saved")
        return {
            "at_second": at_second,
            "chips": len(chips),
            "pick": pick,
            "checked": checked,
            "areas": areas,
            "first_chips": first_chips,
            "undo_width": undo_width,
            "rows": rows,
        }
    finally:
        driver.quit()


async def test_a_second_tap_draws_at_once_and_its_alternatives_can_be_picked(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, count=2, price=20) as (box, samples):
        opened = await open_task(box, "w")
        aid = opened.assignment_id
        truth = truth_of(box, samples, aid)
        (fx, fy), (x2, y2) = two_points_on(truth)
        seen = await asyncio.to_thread(_second_tap_flow, opened.url, (fx * 319, fy * 239), (x2 * 319, y2 * 239), "second-tap")
        assert seen["at_second"]["outlines"] == 1  # the refined mask was drawn alone, before the alternatives came
        # meanwhile numbered placeholders held the row: it never emptied, Undo never moved
        rows = seen["rows"]
        assert any(r["slots"] for r in rows), rows
        if seen["first_chips"] >= 2:
            assert all(r["children"] > 0 for r in rows), rows
            pending = [r for r in rows if r["slots"]]
            assert all(r["slots"] == seen["first_chips"] and r["undo"] == seen["undo_width"] for r in pending), (seen, rows)
        assert 2 <= seen["chips"] <= 3
        assert seen["checked"][seen["pick"]] == "true"
        with box.db.session() as s:
            answers = list(s.execute(select(Answer)).scalars())
        assert [(a.assignment_id, a.value, a.reward) for a in answers] == [(aid, "mask", 20)]
        # the stored mask is the picked alternative (the photo is stored at the phone copy's size)
        stored = coco_rle.decode(json.loads(answers[0].mask_rle or ""))
        areas = seen["areas"]
        assert int(stored.sum()) == areas[seen["pick"]] != areas[0], (int(stored.sum()), areas)


def _pick_then_point_flow(url: str, pins: list[tuple[float, float]], point: tuple[float, float]) -> dict[str, Any]:
    driver = phone()
    try:
        driver.get(url)
        wait_until(driver, lambda d: state(d) == "ready", what="the photo")
        for pin in pins:  # a pin with two outlines or more (a touch lands within a pixel of its point)
            tap_image(driver, *pin)
            wait_until(driver, lambda d: state(d) == "mask", what="the pin's outline")
            chips = driver.find_elements("css selector", "#candidates .cand")
            if len(chips) >= 2:
                break
            driver.find_element("id", "undo").click()
            wait_until(driver, lambda d: d.execute_script("return window.__miniapp.task().inputs") == 0, what="undone")
        assert len(chips) >= 2, "no pin gave two outlines"
        chips[1].click()  # the worker prefers outline 2 ...
        drawn = len(driver.execute_script("return window.__miniapp.timings"))
        tap_image(driver, *point)  # ... and adds a point to it
        wait_until(driver, lambda d: len(d.execute_script("return window.__miniapp.timings")) == drawn + 1, what="the refined outline")
        task = driver.execute_script("return window.__miniapp.task()")
        driver.find_element("id", "keep").click()
        wait_until(driver, lambda d: state(d) == "saved", what="saved")
        return {"task": task}
    finally:
        driver.quit()


async def test_a_point_after_picking_an_outline_refines_that_outline(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, count=1, price=20) as (box, samples):
        opened = await open_task(box, "w")
        aid = opened.assignment_id
        truth = truth_of(box, samples, aid)
        _, (x2, y2) = two_points_on(truth)
        pins = [(x * 319, y * 239) for x, y in pins_on(truth, 5)]
        seen = await asyncio.to_thread(_pick_then_point_flow, opened.url, pins, (x2 * 319, y2 * 239))
        assert seen["task"]["inputs"] == 2 and seen["task"]["base"] == 1  # the page said which outline the point refines
        with box.db.session() as s:
            (answer,) = s.execute(select(Answer)).scalars()
        assert (answer.assignment_id, answer.value) == (aid, "mask")
        stored = coco_rle.decode(json.loads(answer.mask_rle or ""))
        assert int(stored.sum()) == seen["task"]["areas"][0]  # Keep stored the outline drawn for that base
