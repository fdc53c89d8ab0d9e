"""Headless Chromium for the browser tests: Debian's ``chromium`` and ``chromium-driver``
(``.ci/run`` installs them with fonts-noto-cjk), driven by selenium. No browser download: the
driver is the system one. Without it the tests fail, they do not skip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CROWDPIN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CROWDPIN_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("CROWDPIN_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"))

PHONE = (360, 740)
DESKTOP = (1280, 860)


def artifacts_dir(name: str) -> Path:
    """Screenshots are kept here (git-ignored) for a person to look at."""
    folder = ARTIFACTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium(size: tuple[int, int] = PHONE):  # -> selenium.webdriver.Chrome
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            pytest.fail(f"{path} is missing: apt-get install chromium chromium-driver fonts-noto-cjk (.ci/run does)", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=ko-KR", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    set_viewport(driver, size)
    return driver


def set_viewport(driver, size: tuple[int, int]) -> None:
    """A phone's viewport (narrower than headless Chromium's smallest window: 500 px), or a desktop's."""
    phone = size[0] < 500
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": size[0], "height": size[1], "deviceScaleFactor": 2 if phone else 1, "mobile": phone},
    )
