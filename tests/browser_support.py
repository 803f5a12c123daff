"""Headless Chromium (Debian's chromium and chromium-driver, driven by Selenium) for the page
tests, and where their screenshots go (test-artifacts/, git-ignored).

Skips where Chromium, chromedriver or Selenium are missing, except in CI (CI=true).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import IN_CI

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        message = "missing: " + ", ".join(missing) + " (apt-get install chromium chromium-driver)"
        if IN_CI:
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    return chromium, driver


def chromium_driver(width: int = 1280, height: int = 1000):
    """A headless Chromium window of `width`×`height`; a generator for a pytest fixture."""
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def page_text_after(browser, expected: str) -> str:
    """The page's text once `expected` shows: a click returns before the next page loads."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(
        expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "body"), expected)
    )
    return browser.find_element(By.TAG_NAME, "body").text


def screenshot(driver, name: str) -> Path:
    """Save the whole page (not only the window) as test-artifacts/NAME.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    width = driver.execute_script("return document.documentElement.scrollWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    size = driver.get_window_size()
    driver.set_window_size(size["width"], max(size["height"], min(height + 120, 4000)))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(size["width"], size["height"])
    assert path.stat().st_size > 1000, f"{path} is empty ({width}x{height} page)"
    return path


def horizontal_overflow(driver, selector: str = "html") -> int:
    """How many CSS pixels the widest matching element scrolls sideways (0 when all fit).

    The admin wraps its result table in a scrolling box, so the page itself never overflows:
    give that box's selector (`.results`) to see whether columns are cut off.
    """
    return int(
        driver.execute_script(
            "return Math.max(0, ...Array.from(document.querySelectorAll(arguments[0]),"
            " e => e.scrollWidth - e.clientWidth))",
            selector,
        )
    )
