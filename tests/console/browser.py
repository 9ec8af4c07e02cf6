"""Headless Debian chromium for the console tests, and the screenshots they leave in reports/.

    with chromium() as driver:
        driver.get(gateway_url + "/ui/#models")
        screenshot(driver, "models")              # reports/console-models.png

No download at run time: the browser and its driver are Debian's packages (selenium is
handed both paths, so Selenium Manager never looks for its own). A missing browser fails
the test with the command that installs it; nothing is skipped.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"  # git-ignored
WINDOW = (1400, 1000)


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"{names[0]} is not installed: run `bash tests/console/install_browser.sh` (make test does)",
                pytrace=False)


@contextmanager
def chromium() -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium", "chromium-browser")
    # --no-sandbox: the tests run as root in CI, where chromium refuses its sandbox
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}", "--lang=en-GB"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(_binary("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str, height: int = 2400) -> Path:
    """reports/console-NAME.png of the whole page from its top (at most `height` pixels tall)."""
    REPORTS.mkdir(exist_ok=True)
    page, frame = driver.execute_script("window.scrollTo(0, 0); return [document.documentElement.scrollHeight, "
                                        "window.outerHeight - window.innerHeight]")
    driver.set_window_size(WINDOW[0], min(max(WINDOW[1], page + frame), height))
    path = REPORTS / f"console-{name}.png"
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(*WINDOW)
    return path
