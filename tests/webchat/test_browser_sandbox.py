"""``crowdpin demo --web`` in a real browser: a person plays the worker by clicking in the page.

The command runs as a subprocess on free ports, as a user starts it; headless Chromium opens the
printed address at phone size, presses Start, asks for a task with the reply keyboard and
answers one task of each sample project by clicking its inline buttons: a classify label, a
confirm-mask verdict, and Magic Pin (a grid cell, then Keep / the first outline). Then the
database of the sandbox must hold exactly those answers, paid, and the Magic Pin mask must be
the object. Screenshots go to ``artifacts/screenshots/webchat/``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.autoseg import rle as coco_rle
from bot.i18n import t
from bot.sample import deepest_cell, generate, true_mask
from bot.sandbox import truth_label
from tests.webapp.browser import state, tap_image, wait_until
from tests.webapp.test_miniapp_api import deepest_point
from tests.webchat.browser import DESKTOP, PHONE, artifacts_dir, chromium, set_viewport

pytestmark = pytest.mark.timeout(240)
PRECISE = t("masks.webapp.button", "ko")


class WebDemo:
    def __init__(self, process: subprocess.Popen[str], url: str, emulator_url: str, workdir: Path, head: str) -> None:
        self.process, self.url, self.emulator_url, self.workdir, self.head = process, url, emulator_url, workdir, head

    def bot_call(self, method: str, **params) -> dict:
        """A Bot API call as the bot (its token from the emulator's control API)."""
        with urllib.request.urlopen(f"{self.emulator_url}/_emu/bots") as response:
            token = json.load(response)["result"][0]["token"]
        request = urllib.request.Request(
            f"{self.emulator_url}/bot{token}/{method}", data=json.dumps(params).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request) as response:
            return json.load(response)["result"]

    @staticmethod
    def user_id(driver) -> int:
        return int(driver.execute_script("return JSON.parse(localStorage.getItem('crowdpin.webchat')).user.id"))

    def answers(self) -> list[tuple[str, str, str | None, int]]:
        with sqlite3.connect(self.workdir / "crowdpin.db") as conn:
            return conn.execute(
                "SELECT p.type, a.value, a.mask_rle, a.reward FROM answer a JOIN project p ON p.id = a.project_id ORDER BY a.id"
            ).fetchall()


@pytest.fixture
def web_demo(tmp_path: Path) -> Iterator[WebDemo]:
    workdir = tmp_path / "sandbox"
    cmd = [sys.executable, "-m", "bot.cli", "demo", "--web", "--port", "0", "--workdir", str(workdir), "--tasks", "1", "--mask-tasks", "2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("BOT_TOKEN", None)
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    assert process.stdout is not None
    head, deadline = [], time.monotonic() + 90
    url = emulator_url = None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        head.append(line)
        if found := re.search(r"Bot API emulator: (\S+)", line):
            emulator_url = found.group(1)
        if found := re.search(r"Open (http://\S+)", line):
            url = found.group(1)
            break
    try:
        assert url and emulator_url, "crowdpin demo --web printed no address:\n" + "".join(head)
        yield WebDemo(process, url, emulator_url, workdir, "".join(head))
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung shutdown is a bug, but do not leave it running
            process.kill()
            process.wait(5)


def _wait(driver, condition, timeout: float = 30.0, what: str = ""):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the page redraws a message when the bot edits it: an element found a moment ago may be gone
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]).until(
        condition, message=what
    )


def _button(driver, css: str, text: str):
    """The visible, enabled button with exactly this text (None until it is there)."""
    for element in driver.find_elements("css selector", css):
        label = element.text.replace("↗", "").strip()
        if label == text and element.is_displayed() and element.is_enabled():
            return element
    return None


def _last_bot_message(driver):
    messages = driver.find_elements("css selector", ".msg.bot")
    return messages[-1] if messages else None


def _click_inline(driver, text: str, shot: Path | None = None) -> str:
    """Click an inline button of a bot message; returns that message's id. Found and clicked in
    one step, again if the bot redrew the message in between (an edit replaces its element)."""
    from selenium.common.exceptions import StaleElementReferenceException

    def click(d) -> str | None:
        button = _button(d, ".msg.bot .ib", text)
        if button is None:
            return None
        try:
            message_id = button.find_element("xpath", "ancestor::div[contains(@class, 'msg')]").get_attribute("data-id")
            if shot is not None:
                d.save_screenshot(str(shot))
            button.click()
        except StaleElementReferenceException:
            return None
        return message_id

    return _wait(driver, click, what=f"inline button {text!r}")


def _photo_loaded(driver) -> bool:
    return bool(
        driver.execute_script(
            "const i = [...document.querySelectorAll('.msg.bot img.photo')].pop(); return !!i && i.complete && i.naturalWidth > 0;"
        )
    )


def test_a_person_labels_classify_confirm_magic_pin_and_boxes_by_clicking(web_demo: WebDemo, tmp_path: Path) -> None:
    shots = artifacts_dir("webchat")
    # The first screen is the product talking, not library logs.
    assert web_demo.head.startswith("crowdpin sandbox"), web_demo.head
    assert "alembic" not in web_demo.head.lower() and " INFO " not in web_demo.head

    # What a careful worker answers: the sample images are deterministic (bot.demo.load_sample_projects).
    shape = generate(tmp_path / "c", count=1, seed=7)[0]
    pin_samples = generate(tmp_path / "p", count=2, seed=33)
    label, cell = truth_label(shape), deepest_cell(pin_samples[0])

    driver = chromium(PHONE)
    try:
        driver.get(web_demo.url)
        assert driver.execute_script("return window.innerWidth") == PHONE[0]
        start = _wait(driver, lambda d: _button(d, "#start", t("webchat.start", "ko")), what="the Start button")
        assert driver.find_element("css selector", ".intro").is_displayed()
        driver.save_screenshot(str(shots / "01-phone-start.png"))
        start.click()

        get_task = t("menu.get_task", "ko")
        menu = _wait(driver, lambda d: _button(d, "#keyboard .kb", get_task), what="the reply keyboard")
        assert driver.find_element("css selector", ".msg.me .text").text.endswith("/start") or "/start" in driver.page_source
        driver.save_screenshot(str(shots / "02-phone-welcome.png"))
        menu.click()

        # 1. classify: the photo with its labels; the tap is a callback query through the emulator.
        _wait(driver, lambda d: _button(d, ".msg.bot .ib", label) and _photo_loaded(d), what="the classify task")
        task_id = _click_inline(driver, label, shots / "03-phone-classify.png")

        # 2. confirm-mask (two tasks): the same message, edited in place into the next task.
        correct = t("masks.correct", "ko")
        for n in range(2):
            _wait(driver, lambda d: _button(d, ".msg.bot .ib", correct) and _photo_loaded(d), what="the confirm-mask task")
            assert _click_inline(driver, correct, shots / f"04-phone-confirm-mask-{n + 1}.png") == task_id
        edited = t("webchat.edited", "ko")
        _wait(driver, lambda d: edited in d.find_element("css selector", f'.msg.bot[data-id="{task_id}"] .meta').text, what="marked edited")
        assert len(driver.find_elements("css selector", f'.msg.bot[data-id="{task_id}"]')) == 1

        # 3. Magic Pin in the chat: a grid cell, then keep the outline the bot drew from it.
        _wait(driver, lambda d: _button(d, ".msg.bot .ib", cell) and _photo_loaded(d), what="the Magic Pin grid")
        # the sandbox serves the Mini App too: the task carries its ✏️ Precise web_app button
        precise = _wait(driver, lambda d: _button(d, ".msg.bot .ib[data-webapp]", PRECISE), what="the ✏️ Precise button")
        assert "/app/" in (precise.get_attribute("data-webapp") or "")
        assert _click_inline(driver, cell, shots / "05-phone-magic-pin-grid.png") == task_id
        keep_texts = {t("masks.pin.keep", "ko"), t("masks.pin.pick", "ko", mark="🟨", number=1)}

        def keep_button(d):
            return next((b for text in keep_texts if (b := _button(d, ".msg.bot .ib", text))), None)

        keep = _wait(driver, lambda d: keep_button(d) if _photo_loaded(d) else None, what="the outline to keep")
        _click_inline(driver, keep.text.replace("↗", "").strip(), shots / "06-phone-magic-pin-mask.png")

        # 4. Magic Pin in the Mini App: ✏️ Precise opens it in a phone-sized panel over the chat;
        # an exact tap, Keep, and the app closes its panel (web_app_close) with nothing left to do.
        _wait(driver, lambda d: _button(d, ".msg.bot .ib[data-webapp]", PRECISE) and _photo_loaded(d), what="the second pin task")
        _click_inline(driver, PRECISE)
        _wait(driver, lambda d: d.find_element("css selector", "#panel").is_displayed(), what="the Mini App panel")
        driver.switch_to.frame(driver.find_element("css selector", "#panel-frame"))
        wait_until(driver, lambda d: state(d) == "ready", what="the Mini App's photo")
        driver.switch_to.default_content()
        driver.save_screenshot(str(shots / "10-phone-mini-app-panel.png"))
        driver.switch_to.frame(driver.find_element("css selector", "#panel-frame"))
        fx, fy = deepest_point(true_mask(pin_samples[1]))
        tap_image(driver, fx * 319, fy * 239)
        wait_until(driver, lambda d: state(d) == "mask", what="the Mini App's outline")
        driver.switch_to.default_content()
        driver.save_screenshot(str(shots / "11-phone-mini-app-mask.png"))
        driver.switch_to.frame(driver.find_element("css selector", "#panel-frame"))
        driver.find_element("id", "keep").click()
        wait_until(driver, lambda d: state(d) == "saved", what="saved in the Mini App")
        # 5. The next tasks are a model's boxes: the app loads them itself; the first is kept as
        # it came, then the app closes its panel (web_app_close) with nothing left to do.
        seen_boxes = []
        for n in range(2):
            wait_until(
                driver,
                lambda d: state(d) == "ready" and (d.execute_script("return window.__miniapp.task()") or {}).get("type") == "confirm-box",
                what="a box task in the Mini App",
            )
            seen_boxes.append(driver.execute_script("return window.__miniapp.task()"))
            if n == 0:
                driver.switch_to.default_content()
                driver.save_screenshot(str(shots / "12-phone-mini-app-box.png"))
                driver.switch_to.frame(driver.find_element("css selector", "#panel-frame"))
            driver.find_element("id", "keep").click()
            wait_until(driver, lambda d: state(d) == "saved", what="the box saved")
        assert seen_boxes[0]["assignment_id"] != seen_boxes[1]["assignment_id"] and seen_boxes[0]["box"]
        driver.switch_to.default_content()
        _wait(driver, lambda d: not d.find_element("css selector", "#panel").is_displayed(), what="the panel closed by the app")

        done = t("task.all_done", "ko").split("\n")[0]
        _wait(driver, lambda d: done in (_last_bot_message(d).text if _last_bot_message(d) else ""), what="all done")
        driver.save_screenshot(str(shots / "07-phone-done.png"))

        # Stored: one answer per task, each paid, and the Magic Pin mask is the object.
        answers = web_demo.answers()
        assert [(kind, value) for kind, value, _, _ in answers] == [
            ("classify", label),
            ("confirm-mask", "yes"),
            ("confirm-mask", "yes"),
            ("magic-pin", "mask"),
            ("magic-pin", "mask"),
            ("confirm-box", "correct"),
            ("confirm-box", "correct"),
        ]
        assert [reward for *_, reward in answers] == [10] * 7
        for sample, (*_, rle, _reward) in zip(pin_samples, answers[3:5], strict=True):  # the grid's and the exact tap's
            assert coco_rle.mask_iou(coco_rle.decode(json.loads(rle or "{}")), true_mask(sample)) >= 0.85

        # Korean is drawn with a CJK font, not tofu boxes (fonts-noto-cjk; .ci/run installs it).
        korean_fonts = subprocess.run(["fc-list", ":lang=ko", "family"], capture_output=True, text=True, check=False).stdout
        assert korean_fonts.strip(), "no Korean font installed: apt-get install fonts-noto-cjk"

        # The same chat on a desktop; the language toggle switches the page and asks the bot.
        set_viewport(driver, DESKTOP)
        time.sleep(0.5)
        driver.save_screenshot(str(shots / "08-desktop-ko.png"))
        driver.find_element("css selector", "#lang").click()
        _wait(driver, lambda d: d.find_element("css selector", ".status").text == t("webchat.bot_status", "en"), what="English page")
        _click_inline(driver, "🇬🇧 English")  # the bot's language picker, as /language shows it in Telegram
        _wait(driver, lambda d: _button(d, "#keyboard .kb", t("menu.get_task", "en")), what="the English menu")
        driver.save_screenshot(str(shots / "09-desktop-en.png"))

        # A web_app button (the Mini App's ✏️ Precise) opens its page in a phone-sized panel.
        set_viewport(driver, PHONE)
        app_url = web_demo.url + "?lang=en"
        web_demo.bot_call(
            "sendMessage",
            chat_id=web_demo.user_id(driver),
            text="Mini App",
            reply_markup={"inline_keyboard": [[{"text": "✏️ Precise", "web_app": {"url": app_url}}]]},
        )
        _click_inline(driver, "✏️ Precise")
        _wait(driver, lambda d: d.find_element("css selector", "#panel").is_displayed(), what="the Mini App panel")
        # the button's page, with the launch data the emulator signs (when it can) in the fragment
        assert driver.find_element("css selector", "#panel-frame").get_attribute("src").split("#")[0] == app_url
        assert driver.find_element("css selector", "#panel-title").text == "✏️ Precise"
        time.sleep(1)
        driver.save_screenshot(str(shots / "12-phone-web-app-panel.png"))
        driver.find_element("css selector", "#panel-close").click()
        _wait(driver, lambda d: not d.find_element("css selector", "#panel").is_displayed(), what="the panel closed")
    finally:
        driver.quit()
