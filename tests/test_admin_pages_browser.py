"""The review queue and a detection's page in Chromium at 1280 px: everything fits, the
headline says what decided the band, bars take the band's colour. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import pytest
from browser_support import chromium_driver, horizontal_overflow, page_text_after, screenshot
from cms_support import humanmade_conf, png
from conftest import encode, make_image
from PIL import PngImagePlugin

PASSWORD = "a-long-admin-page-password"
NEVER_AI = {"human": 0.5, "ai": 1.0}


@pytest.fixture
def browser():
    yield from chromium_driver(1280, 900)


def _generator_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a red bridge\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 2, Size: 256x192, "
        "Model hash: abc123, Model: v1-5-pruned",
    )
    return encode(make_image(256, 192, seed=8), "PNG", pnginfo=info)


def _login(browser, live_server, path: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server.url}/admin/login/?next={path}")
    browser.find_element(By.NAME, "username").send_keys("editor")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


@pytest.mark.django_db(transaction=True)
def test_review_queue_fits_1280_and_says_why(
    browser, live_server, settings, tiny_weights, tmp_path
):
    from django.contrib.auth import get_user_model
    from selenium.webdriver.common.by import By

    from cms_plugin import services
    from cms_plugin.models import Detection

    settings.HUMANMADE = humanmade_conf(tiny_weights, CUTOFFS=NEVER_AI)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    services.forget_detector()
    get_user_model().objects.create_superuser("editor", "", PASSWORD)
    ai = services.score_upload(_generator_png())
    services.score_upload(png(3, 300, 200))
    Detection.objects.create(
        source_url="https://images.example.org/a/very/long/path/to/some/newsroom/photo-2026.jpg",
        status="needs_review",
        probability=0.62,
        band="uncertain",
        decided_by="pixels",
        model_version="humanmade-2026.12.02-candidate",
    )
    ai.refresh_from_db()
    assert ai.decided_by == "provenance"

    _login(browser, live_server, "/admin/cms_plugin/detection/")
    body = page_text_after(browser, "Review queue")
    assert "provenance in the file" in body and "pixel score" in body
    screenshot(browser, "admin_review_queue_1280")
    assert horizontal_overflow(browser) == 0
    assert horizontal_overflow(browser, ".results") == 0  # no column cut off
    headers = [th.text.strip() for th in browser.find_elements(By.CSS_SELECTOR, "#result_list th")]
    for column in ("WHY", "REVIEW", "MODEL", "SOURCE", "CREATED"):
        assert any(column == h.upper() for h in headers), headers
    fills = browser.find_elements(By.CSS_SELECTOR, ".hm-fill.hm-ai")
    assert fills and fills[0].value_of_css_property("background-color") == "rgba(198, 40, 40, 1)"

    browser.get(f"{live_server.url}/admin/cms_plugin/detection/{ai.pk}/change/")
    body = page_text_after(browser, "Confirm human-made")
    review = browser.find_element(By.CSS_SELECTOR, ".hm-review").text
    assert ai.summary in review and "strong AI evidence: " in review and "strong_ai" not in review
    assert horizontal_overflow(browser) == 0
    screenshot(browser, "admin_detection_provenance")
