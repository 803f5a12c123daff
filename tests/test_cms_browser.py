"""In a real browser (Debian's headless Chromium, driven by Selenium): log into the admin,
open the review queue with a borderline upload waiting, confirm it human-made. The page is
kept as a screenshot in test-artifacts/.

Skips where Chromium, chromedriver or Selenium are missing, except in CI (CI=true).
"""

from __future__ import annotations

import pytest
from browser_support import ARTIFACTS, chromium_driver, page_text_after
from cms_support import humanmade_conf, png

PASSWORD = "a-long-browser-test-password"


@pytest.fixture
def browser():
    yield from chromium_driver()


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
    body = page_text_after(browser, "Review queue")
    assert "advisory" in body.lower()
    assert "needs review" in body

    browser.find_element(By.LINK_TEXT, str(detection.pk)).click()
    page_text_after(browser, "Confirm human-made")
    browser.find_element(By.ID, "hm-note").send_keys("the photographer sent the raw file")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "cms_review_before.png"))
    browser.find_element(By.ID, "hm-confirm-human").click()

    page_text_after(browser, "confirmed human-made")
    browser.save_screenshot(str(ARTIFACTS / "cms_review_done.png"))
    detection.refresh_from_db()
    assert detection.status == Detection.Status.REVIEWED
    assert detection.decision == Detection.Decision.HUMAN_MADE
    assert detection.reviewer.username == "editor"
    assert detection.note == "the photographer sent the raw file"
    assert (ARTIFACTS / "cms_review_done.png").stat().st_size > 1000
