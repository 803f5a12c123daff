"""In a real browser (Debian's headless Chromium, driven by Selenium): log into the admin,
open the review queue with a borderline upload waiting, confirm it human-made. The page is
kept as a screenshot in test-artifacts/.

Skips where Chromium, chromedriver or Selenium are missing, except in CI (CI=true).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cms_support import humanmade_conf, png
from conftest import IN_CI

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "a-long-browser-test-password"


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


@pytest.fixture
def browser():
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
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _page_text_after(browser, expected: str) -> str:
    """The page's text once `expected` shows: a click returns before the next page loads."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(
        expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "body"), expected)
    )
    return browser.find_element(By.TAG_NAME, "body").text


@pytest.mark.django_db(transaction=True)
def test_reviewer_confirms_a_borderline_upload_in_the_admin(
    browser, live_server, settings, tiny_weights, tmp_path
):
    from django.contrib.auth import get_user_model
    from selenium.webdriver.common.by import By

    from cms_plugin import services
    from cms_plugin.models import Detection

    settings.HUMANMADE = humanmade_conf(tiny_weights)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    get_user_model().objects.create_superuser("editor", "", PASSWORD)
    detection = services.score_upload(png(31, 160, 120))  # committed: scored at once
    detection.refresh_from_db()
    assert detection.status == Detection.Status.NEEDS_REVIEW

    browser.get(f"{live_server.url}/admin/login/?next=/admin/cms_plugin/detection/")
    browser.find_element(By.NAME, "username").send_keys("editor")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    body = _page_text_after(browser, "Review queue")
    assert "advisory" in body.lower()
    assert "needs review" in body

    browser.find_element(By.LINK_TEXT, str(detection.pk)).click()
    _page_text_after(browser, "Confirm human-made")
    browser.find_element(By.ID, "hm-note").send_keys("the photographer sent the raw file")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "cms_review_before.png"))
    browser.find_element(By.ID, "hm-confirm-human").click()

    _page_text_after(browser, "confirmed human-made")
    browser.save_screenshot(str(ARTIFACTS / "cms_review_done.png"))
    detection.refresh_from_db()
    assert detection.status == Detection.Status.REVIEWED
    assert detection.decision == Detection.Decision.HUMAN_MADE
    assert detection.reviewer.username == "editor"
    assert detection.note == "the photographer sent the raw file"
    assert (ARTIFACTS / "cms_review_done.png").stat().st_size > 1000
