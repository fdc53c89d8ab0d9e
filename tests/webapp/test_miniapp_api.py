"""The Mini App's API over real HTTP: launch data the emulator signs as Telegram does, the
✏️ Precise button, Keep through the same answer path as a tap, and every way to be refused."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import cv2
import numpy as np
import pytest
from aiogram.utils.web_app import safe_parse_webapp_init_data
from sqlalchemy import func, select

from bot.autoseg import rle as coco_rle
from bot.autoseg import set_segmenter
from bot.emulator import Emulator
from bot.emulator.errors import ApiError
from bot.emulator.markup import check_reply_markup
from bot.emulator.webapp import sign_init_data
from bot.i18n import t
from bot.sandbox import Sandbox, create_mask_project
from bot.simulate import SimWorker
from bot.tasks.models import Answer, Assignment, AssignmentStatus
from bot.wallet.ledger import balance
from bot.webapp.auth import AuthError, check_init_data
from tests.masks.candidate_backend import Held
from tests.webapp.helpers import WAIT, call, counts, fragment_of, open_task, query_of, truth_of, webapp_sandbox


def deepest_point(mask: np.ndarray) -> tuple[float, float]:
    """The interior point farthest from the object's edge, as fractions of (W - 1, H - 1)."""
    depth = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = divmod(int(np.argmax(depth)), mask.shape[1])
    return x / (mask.shape[1] - 1), y / (mask.shape[0] - 1)


def two_points_on(mask: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """The deepest point of the object and its point farthest from that one (fractions)."""
    x, y = deepest_point(mask)
    ys, xs = np.nonzero(mask)
    far = int(np.argmax((xs - x * (mask.shape[1] - 1)) ** 2 + (ys - y * (mask.shape[0] - 1)) ** 2))
    return (x, y), (float(xs[far]) / (mask.shape[1] - 1), float(ys[far]) / (mask.shape[0] - 1))


def pins_on(mask: np.ndarray, spread: int) -> list[tuple[float, float]]:
    """Points to try as a pin (fractions): the deepest point, then ``spread`` points spread over
    the object (how many outlines a pin gets depends on where it lands, within a pixel)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    spaced = np.linspace(0, len(xs) - 1, spread + 2, dtype=int)[1:-1]
    return [deepest_point(mask), *((float(xs[i]) / (w - 1), float(ys[i]) / (h - 1)) for i in spaced)]


def _worker_id(box: Sandbox, tg_id: int) -> int:
    from bot.workers import get_by_tg

    with box.db.session() as s:
        worker = get_by_tg(s, tg_id)
        assert worker is not None and worker.id is not None
        return worker.id


def _tampered(init_data: str, **changes: str) -> str:
    fields = dict(parse_qsl(init_data))
    fields.update(changes)
    return urlencode(fields)


# ------------------------------------------------------------------ launch data and buttons
def test_launch_data_is_signed_as_telegram_signs_it() -> None:
    emu = Emulator()
    token = emu.add_bot()
    fields = {"user": json.dumps({"id": 7, "first_name": "Min"}), "auth_date": str(int(time.time())), "query_id": "AAx"}
    signed = sign_init_data(token, fields)
    parsed = safe_parse_webapp_init_data(token, signed)  # aiogram's own check, no shortcut
    assert parsed.user is not None and parsed.user.id == 7
    with pytest.raises(ValueError):
        safe_parse_webapp_init_data(token.replace(token[-3:], "xyz"), signed)
    user = check_init_data(token, signed, max_age=60)
    assert user.tg_id == 7
    with pytest.raises(AuthError, match="expired"):
        check_init_data(token, signed, max_age=60, now=time.time() + 61)
    with pytest.raises(AuthError, match="future"):
        check_init_data(token, signed, max_age=60, now=time.time() - 3600)
    with pytest.raises(AuthError, match="signature"):
        check_init_data(token, _tampered(signed, user=json.dumps({"id": 8, "first_name": "Eve"})), max_age=60)


def test_emulator_accepts_web_app_buttons_as_telegram_does() -> None:
    check_reply_markup({"inline_keyboard": [[{"text": "✏️", "web_app": {"url": "https://pin.example.com/app/?a=1"}}]]})
    check_reply_markup({"inline_keyboard": [[{"text": "✏️", "web_app": {"url": "http://127.0.0.1:8090/app/"}}]]})  # local bot
    for url in ("http://pin.example.com/app/", "ftp://x/", ""):
        with pytest.raises(ApiError, match=r"Web App URL|BUTTON_URL_INVALID"):
            check_reply_markup({"inline_keyboard": [[{"text": "✏️", "web_app": {"url": url}}]]})
    with pytest.raises(ApiError, match="exactly one"):
        check_reply_markup({"inline_keyboard": [[{"text": "✏️", "web_app": {"url": "https://a.b/"}, "callback_data": "x"}]]})


async def test_no_precise_button_without_webapp_url(sandbox: Sandbox, tmp_path: Path) -> None:
    create_mask_project(sandbox.db, tmp_path / "images", type="magic-pin", count=1)
    sim = SimWorker.create(sandbox.emulator, "w", "en")
    await sim.start()
    screen = await sim.request_task()
    assert screen is not None
    message = sandbox.emulator.last_message(sim.user_id)
    assert message is not None
    assert not [b for row in message.reply_markup["inline_keyboard"] for b in row if "web_app" in b]


@pytest.mark.parametrize("kind", ["magic-pin", "confirm-mask"])
async def test_precise_button_opens_the_page_on_this_assignment(tmp_path: Path, kind: str) -> None:
    async with webapp_sandbox(tmp_path, type=kind, count=1) as (box, _):
        opened = await open_task(box, "w")
        message = box.emulator.last_message(opened.sim.user_id)
        assert message is not None
        buttons = [b for row in message.reply_markup["inline_keyboard"] for b in row if "web_app" in b]
        assert [b["text"] for b in buttons] == [t("masks.webapp.button", "en")]
        assert query_of(opened.url)["a"] == [str(opened.assignment_id)]
        launch = fragment_of(opened.url)
        assert launch["tgWebAppData"] == [opened.init_data] and "tgWebAppThemeParams" in launch
        status, body = await call(opened, "GET", f"task?a={opened.assignment_id}")
        assert status == 200 and body["task"]["type"] == kind
        assert body["task"]["image"] == {"w": 320, "h": 240, "url": f"api/image?a={opened.assignment_id}"}
        assert (body["task"]["mask"] is not None) == (kind == "confirm-mask")
        status, jpeg = await call(opened, "GET", f"image?a={opened.assignment_id}")
        assert status == 200 and jpeg[:2] == b"\xff\xd8"


# ------------------------------------------------------------------ answers
async def test_keep_answers_once_pays_once_and_moves_the_chat(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, count=3, price=15) as (box, samples):
        opened = await open_task(box, "w")
        aid = opened.assignment_id
        truth = truth_of(box, samples, aid)
        x, y = deepest_point(truth)
        status, seg = await call(opened, "POST", "segment", {"a": aid, "points": [[x, y, True]]})
        assert status == 200 and 1 <= len(seg["candidates"]) <= 3
        runs = seg["candidates"][0]["runs"]
        assert sum(runs) == 320 * 240 and seg["candidates"][0]["area"] == sum(runs[1::2])
        before = box.emulator.chat_version(opened.sim.user_id)
        keep = {"a": aid, "action": "keep", "points": [[x, y, True]], "candidate": 0}
        status, body = await call(opened, "POST", "answer", keep)
        assert status == 200 and body["reward"] == 15 and body["next"]["assignment_id"] != aid
        for _ in range(3):  # retried, replayed: refused, nothing more stored or paid
            status, again = await call(opened, "POST", "answer", keep)
            assert status == 409 and again["error"] == "already"
        worker_id = _worker_id(box, opened.sim.user_id)
        with box.db.session() as s:
            answers = list(s.execute(select(Answer)).scalars())
            assert [(a.assignment_id, a.value, a.reward) for a in answers] == [(aid, "mask", 15)]
            money = balance(s, worker_id)
            assert money.pending + money.available == 15
            assert s.get(Assignment, aid).status == AssignmentStatus.ANSWERED  # type: ignore[union-attr]
        stored = coco_rle.decode(json.loads(answers[0].mask_rle or ""))
        assert coco_rle.mask_iou(stored, truth) >= 0.85
        # the chat's task message was edited into the next task (same message, new assignment)
        await box.emulator.wait_for(lambda: box.emulator.chat_version(opened.sim.user_id) > before, timeout=WAIT)
        screen = opened.sim.screen()
        assert screen is not None and screen.message_id == opened.screen.message_id
        assert screen.assignment_id == body["next"]["assignment_id"]


async def test_confirm_mask_keep_as_is_is_yes_and_a_fix_is_the_answer(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, type="confirm-mask", count=2, wrong_every=2) as (box, samples):
        opened = await open_task(box, "w")
        status, body = await call(opened, "POST", "answer", {"a": opened.assignment_id, "action": "keep"})
        assert status == 200
        nxt = body["next"]
        assert nxt is not None and nxt["type"] == "confirm-mask"
        truth = truth_of(box, samples, nxt["assignment_id"])
        x, y = deepest_point(truth)
        fix = {"a": nxt["assignment_id"], "action": "keep", "points": [[x, y, True]], "candidate": 0}
        status, _ = await call(opened, "POST", "answer", fix)
        assert status == 200
        with box.db.session() as s:
            answers = list(s.execute(select(Answer).order_by(Answer.id)).scalars())
        assert [(a.value, a.mask_rle is None) for a in answers] == [("yes", True), ("no", False)]
        assert coco_rle.mask_iou(coco_rle.decode(json.loads(answers[1].mask_rle or "")), truth) >= 0.85


async def test_none_and_skip(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, count=2) as (box, _):
        opened = await open_task(box, "w")
        status, body = await call(opened, "POST", "answer", {"a": opened.assignment_id, "action": "none"})
        assert status == 200
        status, _ = await call(opened, "POST", "answer", {"a": body["next"]["assignment_id"], "action": "skip"})
        assert status == 200
        with box.db.session() as s:
            assert [a.value for a in s.execute(select(Answer)).scalars()] == ["none"]
            statuses = sorted(s.execute(select(Assignment.status)).scalars())
        assert statuses == sorted([AssignmentStatus.ANSWERED, AssignmentStatus.SKIPPED])


# ------------------------------------------------------------------ refusals
async def test_forged_expired_and_foreign_launch_data_change_nothing(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, count=3) as (box, samples):
        mine = await open_task(box, "mine")
        other = await open_task(box, "other")
        aid = mine.assignment_id
        x, y = deepest_point(truth_of(box, samples, aid))
        keep = {"a": aid, "action": "keep", "points": [[x, y, True]], "candidate": 0}
        before = counts(box)
        old = box.emulator.open_web_app(mine.sim.user_id, mine.screen.message_id, auth_date=int(time.time()) - 25 * 3600)
        other_bot = sign_init_data("123456:" + "x" * 35, dict(parse_qsl(mine.init_data)) | {"hash": ""})
        forged_user = _tampered(mine.init_data, user=json.dumps({"id": other.sim.user_id, "first_name": "x"}))
        cases = {
            "missing": (401, ""),
            "garbage": (401, "not-launch-data"),
            "tampered user": (401, forged_user),
            "other bot's token": (401, other_bot),
            "expired": (401, old["init_data"]),
            "another worker's": (403, other.init_data),
        }
        for name, (expected, data) in cases.items():
            for method, path, body in (
                ("GET", f"task?a={aid}", None),
                ("GET", f"image?a={aid}", None),
                ("POST", "segment", {"a": aid, "points": [[x, y, True]]}),
                ("POST", "answer", keep),
            ):
                status, reply = await call(mine, method, path, body, init_data=data)
                assert status == expected, (name, path, status, reply)
                assert reply["ok"] is False
        assert counts(box) == before
        # the owner's own launch data still works afterwards
        status, _ = await call(mine, "POST", "answer", keep)
        assert status == 200


async def test_bad_input_gets_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, count=1) as (box, _):
        opened = await open_task(box, "w")
        aid = opened.assignment_id
        before = counts(box)
        bad = [
            ("segment", {"a": aid, "points": [[1.5, 0.2, True]]}, "between 0 and 1"),
            ("segment", {"a": aid, "points": [[0.5, 0.5, "yes"]]}, "[x, y, positive]"),
            ("segment", {"a": aid, "points": [[0.5, 0.5, False]]}, "positive point"),
            ("segment", {"a": aid, "points": [[0.5, 0.5, True]] * 21}, "at most 20"),
            ("segment", {"a": aid, "box": [0.1, 0.1, 0.1, 0.1]}, "too small"),
            ("segment", {"a": aid}, "tap the object"),
            ("segment", {"a": "x", "points": [[0.5, 0.5, True]]}, "assignment id"),
            ("answer", {"a": aid, "action": "delete"}, "keep, none, class or skip"),
            ("answer", {"a": aid, "action": "keep"}, "no mask to keep"),
            ("answer", {"a": aid, "action": "keep", "points": [[0.5, 0.5, True]], "candidate": 9}, "no such outline"),
            ("answer", {"a": 424242, "action": "none"}, "unknown"),
        ]
        for path, body, message in bad:
            status, reply = await call(opened, "POST", path, body)
            assert status in (400, 404), (path, body, reply)
            assert message in (reply["message"] + reply["error"]), (message, reply)
        assert counts(box) == before


async def test_confirm_mask_minus_taps_trim_its_own_mask(tmp_path: Path) -> None:
    async with webapp_sandbox(tmp_path, type="confirm-mask", count=1) as (box, samples):
        opened = await open_task(box, "w")
        aid = opened.assignment_id
        truth = truth_of(box, samples, aid)
        ys, xs = np.nonzero(~truth)
        minus = [[float(xs[0]) / 319, float(ys[0]) / 239, False]]  # a ➖ tap on the background
        status, seg = await call(opened, "POST", "segment", {"a": aid, "points": minus})
        assert status == 200, seg
        runs = seg["candidates"][0]["runs"]
        flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(240, 320)
        assert coco_rle.mask_iou(flat, truth) >= 0.85  # seeded inside the task's mask, not a stray blob
        status, _ = await call(opened, "POST", "answer", {"a": aid, "action": "keep", "points": minus, "candidate": 0})
        assert status == 200
        with box.db.session() as s:
            assert [a.value for a in s.execute(select(Answer)).scalars()] == ["no"]


async def test_control_api_opens_the_mini_app_over_http(tmp_path: Path) -> None:
    from bot.emulator.client import EmulatorClient

    async with webapp_sandbox(tmp_path, count=1) as (box, _):
        sim = SimWorker.create(box.emulator, "w", "ko")
        await sim.start()
        screen = await sim.request_task()
        assert screen is not None
        async with EmulatorClient(box.server.base_url) as client:
            opened = await client.open_web_app(sim.user_id, screen.message_id, text=t("masks.webapp.button", "ko"))
            with pytest.raises(Exception, match="no web_app button"):
                await client.open_web_app(sim.user_id, screen.message_id, text="nope")
            assert (await client.stats())["web_apps_opened"] == 1
        parsed = safe_parse_webapp_init_data(box.token, opened["init_data"])
        assert parsed.user is not None and parsed.user.id == sim.user_id and parsed.query_id == opened["query_id"]
        assert opened["url"].startswith(box.settings.webapp.webapp_url or "-")


async def test_webhook_server_serves_the_page_under_app(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import make_app, make_database
    from bot.config import WebAppSettings
    from bot.sandbox import sandbox_settings
    from bot.webhook import build_web_app

    settings = sandbox_settings(
        tmp_path, "http://127.0.0.1:9", "123456:" + "a" * 35, webapp=WebAppSettings(WEBAPP_URL="https://pin.example.com/app/")
    )
    db = make_database(settings)
    app = make_app(settings, db)
    from aiogram import Bot, Dispatcher

    bot = Bot(token=settings.telegram.bot_token or "")
    web_app = build_web_app(app, bot, Dispatcher(), secret="s", path="/telegram/webhook")
    async with TestClient(TestServer(web_app)) as http:
        page = await http.get("/app/")
        html = await page.text()
        assert page.status == 200 and t("masks.webapp.keep", "ko") in html and t("masks.webapp.keep", "en") in html
        assert (await http.get("/app/static/app.js")).status == 200
        assert (await http.get("/app/static/../server.py")).status == 404
        assert (await http.get("/app/api/task")).status == 401
    await bot.session.close()
    db.dispose()


async def test_one_segmentation_per_task_at_a_time(tmp_path: Path) -> None:
    """A client cannot queue up CPU: while a segmentation of a task runs, another one for the
    same task is refused with 429 and the busy message; once it is done, the next is served."""
    async with webapp_sandbox(tmp_path, count=1) as (box, samples):
        opened = await open_task(box, "w")
        aid = opened.assignment_id
        x, y = deepest_point(truth_of(box, samples, aid))
        before = counts(box)
        replies = await asyncio.gather(*(call(opened, "POST", "segment", {"a": aid, "points": [[x, y, True]]}) for _ in range(4)))
        statuses = sorted(status for status, _ in replies)
        assert statuses[0] == 200 and statuses[-1] == 429, statuses
        for status, reply in replies:
            if status == 429:
                assert reply["ok"] is False and reply["error"] == "busy"
                assert reply["message"] == t("masks.refuse.busy", "en")
        status, reply = await call(opened, "POST", "segment", {"a": aid, "points": [[x, y, True]]})
        assert status == 200 and reply["candidates"], reply
        assert counts(box) == before  # segmenting stores nothing


async def test_a_shutdown_lets_a_segmentation_in_flight_finish(tmp_path: Path) -> None:
    """A Mini App request counts as work in flight, like an update: stopping the bot while a
    segmentation runs waits for it, and the page gets its outline (the webhook server closes the
    bot's session and Redis in its shutdown hook, before aiohttp waits for open requests)."""
    Held.started.clear()
    Held.release.clear()
    async with webapp_sandbox(tmp_path, count=1) as (box, samples):
        opened = await open_task(box, "w")
        aid = opened.assignment_id
        x, y = deepest_point(truth_of(box, samples, aid))
        running = box.bots[0].app
        set_segmenter(Held())
        try:
            request = asyncio.create_task(call(opened, "POST", "segment", {"a": aid, "points": [[x, y, True]]}))
            assert await asyncio.to_thread(Held.started.wait, WAIT)
            assert len(running.in_flight.tasks) == 1  # the request's handler
            stopping = asyncio.create_task(box.stop_bot())
            await asyncio.sleep(0.5)
            assert not stopping.done()
            for _ in range(int(WAIT / 0.05)):  # the drain has begun (on a slow host maybe after the 0.5 s)
                if running.in_flight.closing:
                    break
                await asyncio.sleep(0.05)
            assert running.in_flight.closing
            # nothing new starts while the drain waits: a Keep is refused in the worker's
            # language and records nothing (the page says so; the worker taps again)
            status, refused = await call(opened, "POST", "answer", {"a": aid, "action": "none"})
            assert status == 503 and refused["error"] == "restarting", refused
            assert refused["message"] == t("masks.webapp.restarting", "en")  # the simulated worker's language
            Held.release.set()
            status, reply = await asyncio.wait_for(request, WAIT)
            assert status == 200 and reply["candidates"], reply
            await asyncio.wait_for(stopping, WAIT)
            assert not running.in_flight.tasks
            with box.db.session() as s:
                assert list(s.execute(select(Answer)).scalars()) == []
        finally:
            set_segmenter(None)
            Held.release.set()


def _runs_mask(runs: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(240, 320)


async def _pin_with_two_outlines(opened: Any, aid: int, truth: np.ndarray) -> tuple[tuple[float, float], dict[str, Any]]:
    """A pin on the object (fractions, from :func:`pins_on`) whose segmentation offers two
    outlines or more, and that answer."""
    for x, y in pins_on(truth, 7):
        status, seg = await call(opened, "POST", "segment", {"a": aid, "points": [[x, y, True]]})
        assert status == 200, seg
        if len(seg["candidates"]) >= 2:
            return (x, y), seg
    raise AssertionError("no pin on the object gave two outlines")


async def test_a_later_tap_answers_with_the_refined_mask_and_the_alternatives_follow(tmp_path: Path) -> None:
    """A second point is answered with one outline (the refined mask) and ``more``; the same
    inputs with ``"more": true`` give every outline, the first the same; Keep of any outline
    stores exactly that one, once, whichever of the two requests drew it."""
    async with webapp_sandbox(tmp_path, count=2, price=10) as (box, samples):
        opened = await open_task(box, "w")
        aid = opened.assignment_id
        truth = truth_of(box, samples, aid)
        (x, y), (x2, y2) = two_points_on(truth)
        points = [[x, y, True], [x2, y2, True]]
        status, first = await call(opened, "POST", "segment", {"a": aid, "points": points[:1]})
        assert status == 200 and first["more"] is False  # one pin: its candidates come at once
        status, quick = await call(opened, "POST", "segment", {"a": aid, "points": points})
        assert status == 200 and quick["more"] is True and len(quick["candidates"]) == 1
        for bad in ("yes", 1, None):  # only true asks for more; anything else is a later tap's quick answer
            status, again = await call(opened, "POST", "segment", {"a": aid, "points": points, "more": bad})
            assert status == 200 and len(again["candidates"]) == 1
        status, full = await call(opened, "POST", "segment", {"a": aid, "points": points, "more": True})
        assert status == 200 and full["more"] is False and 2 <= len(full["candidates"]) <= 3
        assert full["candidates"][0]["runs"] == quick["candidates"][0]["runs"]
        assert coco_rle.mask_iou(_runs_mask(quick["candidates"][0]["runs"]), truth) >= 0.85
        pick = len(full["candidates"]) - 1
        keep = {"a": aid, "action": "keep", "points": points, "candidate": pick}
        status, body = await call(opened, "POST", "answer", keep)
        assert status == 200 and body["reward"] == 10
        status, again = await call(opened, "POST", "answer", keep)
        assert status == 409
        with box.db.session() as s:
            (answer,) = s.execute(select(Answer)).scalars()
        stored = coco_rle.decode(json.loads(answer.mask_rle or ""))
        drawn = cv2.resize(
            _runs_mask(full["candidates"][pick]["runs"]).astype(np.uint8), stored.shape[::-1], interpolation=cv2.INTER_NEAREST
        )
        assert coco_rle.mask_iou(stored, drawn.astype(bool)) >= 0.95  # the outline that was picked, at full size

        # the next task: Keep of the first outline straight after the quick answer (no "more")
        nxt = body["next"]
        truth2 = truth_of(box, samples, nxt["assignment_id"])
        x2, y2 = deepest_point(truth2)
        two = [[x2, y2, True], [x2, y2, False]]  # a later ➖ tap
        status, quick2 = await call(opened, "POST", "segment", {"a": nxt["assignment_id"], "points": two})
        assert status == 200 and quick2["more"] is True and len(quick2["candidates"]) == 1
        status, _ = await call(opened, "POST", "answer", {"a": nxt["assignment_id"], "action": "keep", "points": two, "candidate": 0})
        assert status == 200
        with box.db.session() as s:
            assert s.execute(select(func.count()).select_from(Answer)).scalar_one() == 2


async def test_points_after_a_pick_refine_the_picked_outline(tmp_path: Path) -> None:
    """``base``: the worker chose outline 2 of the pin, then added a point: the server refines
    outline 2, not outline 1; Keep stores what was drawn for that base. A bad base is a 400."""
    async with webapp_sandbox(tmp_path, count=1, price=10) as (box, samples):
        opened = await open_task(box, "w")
        aid = opened.assignment_id
        truth = truth_of(box, samples, aid)
        (x, y), plain = await _pin_with_two_outlines(opened, aid, truth)
        status, pin = await call(opened, "POST", "segment", {"a": aid, "points": [[x, y, True]], "base": 1})
        assert status == 200  # a base with the pin alone changes nothing
        assert [c["runs"] for c in plain["candidates"]] == [c["runs"] for c in pin["candidates"]]
        second = _runs_mask(pin["candidates"][1]["runs"])
        ys, xs = np.nonzero(~second & ~_runs_mask(pin["candidates"][0]["runs"]))
        minus = [float(xs[len(xs) // 2]) / 319, float(ys[len(ys) // 2]) / 239, False]  # a ➖ outside both outlines
        points = [[x, y, True], minus]
        drawn = {}
        for base in (0, 1):
            status, seg = await call(opened, "POST", "segment", {"a": aid, "points": points, "base": base})
            assert status == 200
            drawn[base] = _runs_mask(seg["candidates"][0]["runs"])
        assert coco_rle.mask_iou(drawn[1], second) > coco_rle.mask_iou(drawn[0], second)  # refined from outline 2
        for bad in (-1, 3, "1", True, 1.0):
            status, err = await call(opened, "POST", "segment", {"a": aid, "points": points, "base": bad})
            assert status == 400 and err["error"] == "bad_input", (bad, err)
        status, _ = await call(opened, "POST", "answer", {"a": aid, "action": "keep", "points": points, "base": 1, "candidate": 0})
        assert status == 200
        with box.db.session() as s:
            (answer,) = s.execute(select(Answer)).scalars()
        assert coco_rle.mask_iou(coco_rle.decode(json.loads(answer.mask_rle or "")), drawn[1]) >= 0.99
