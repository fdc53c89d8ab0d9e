"""Headless Chromium from Debian's ``chromium`` and ``chromium-driver`` packages, driven by
selenium through /usr/bin/chromedriver (never a downloaded browser). A missing browser fails
the test with how to install it: these tests are the only check of what a worker sees."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CROWDPIN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CROWDPIN_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def phone(width: int = 360, height: int = 640, *, pixel_ratio: float = 2.0) -> Any:
    """A phone-sized headless Chromium (touch, device pixel ratio 2)."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail(
            f"browser tests need {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver fonts-noto-cjk (.ci/run does)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=ko-KR", "--no-first-run"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "ko-KR,ko"})
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": pixel_ratio, "touch": True}}
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def wait_until(driver: Any, condition: Callable[[Any], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition(driver)
        if value:
            return value
        if time.monotonic() > deadline:
            state = driver.execute_script("return window.__miniapp && [window.__miniapp.state, window.__miniapp.errors]")
            raise AssertionError(f"timed out waiting for {what or condition}; page state {state}")
        time.sleep(0.05)


def state(driver: Any) -> str:
    return str(driver.execute_script("return window.__miniapp ? window.__miniapp.state : ''"))


def tap_at(driver: Any, x: float, y: float) -> None:
    """A touch tap at window coordinates (x, y)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.interaction import POINTER_TOUCH
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    actions = ActionBuilder(driver, mouse=PointerInput(POINTER_TOUCH, "finger"))
    actions.pointer_action.move_to_location(int(round(x)), int(round(y))).pointer_down().pause(0.05).pointer_up()
    actions.perform()


def drag_image(driver: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    """One finger dragged across the photo from image pixel ``start`` to ``end``."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.interaction import POINTER_TOUCH
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    a = driver.execute_script("return window.__miniapp.clientPoint(arguments[0], arguments[1])", *start)
    b = driver.execute_script("return window.__miniapp.clientPoint(arguments[0], arguments[1])", *end)
    actions = ActionBuilder(driver, mouse=PointerInput(POINTER_TOUCH, "finger"))
    pointer = actions.pointer_action.move_to_location(int(a[0]), int(a[1])).pointer_down()
    for i in range(1, 6):
        pointer.move_to_location(int(a[0] + (b[0] - a[0]) * i / 5), int(a[1] + (b[1] - a[1]) * i / 5))
    pointer.pointer_up()
    actions.perform()


def tap_image(driver: Any, x: float, y: float) -> None:
    """Tap the photo at image pixel (x, y)."""
    cx, cy = driver.execute_script("return window.__miniapp.clientPoint(arguments[0], arguments[1])", x, y)
    tap_at(driver, cx, cy)


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def pinch_image(driver: Any, at: tuple[float, float], start_gap: float, end_gap: float) -> None:
    """Two fingers: one on image pixel ``at`` (it lands first and drags 12 px down, as a thumb does
    before the second finger comes), the other ``start_gap`` screen pixels to its right (or left,
    near the right edge); the second moves until they are ``end_gap`` apart."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.interaction import POINTER_TOUCH
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    ax, ay = driver.execute_script("return window.__miniapp.clientPoint(arguments[0], arguments[1])", *at)
    width = driver.execute_script("return window.innerWidth")
    side = 1 if ax + max(start_gap, end_gap) < width - 5 else -1
    actions = ActionBuilder(driver, mouse=PointerInput(POINTER_TOUCH, "finger1"))
    second = actions.add_pointer_input(POINTER_TOUCH, "finger2")
    first = actions.pointer_action
    # the first finger lands and starts to drag before the second one comes down
    first.move_to_location(int(ax), int(ay)).pointer_down().move_to_location(int(ax), int(ay + 12))
    first.pause(0).pause(0)
    for _ in range(3):
        second.create_pause(0)
    second.create_pointer_move(x=int(ax + side * start_gap), y=int(ay), origin="viewport")
    second.create_pointer_down(button=0)
    for i in range(1, 6):
        gap = start_gap + (end_gap - start_gap) * i / 5
        first.move_to_location(int(ax), int(ay + 12))
        second.create_pointer_move(x=int(ax + side * gap), y=int(ay), origin="viewport")
    first.pointer_up()
    second.create_pointer_up(0)
    actions.perform()
