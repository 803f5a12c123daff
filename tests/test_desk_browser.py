"""The checking desk in Chromium: an editor drops files and pastes a URL, watches the
verdicts arrive (the progress indicator moves without a reload), opens a report and exports
the batch. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest
from browser_support import chromium_driver, horizontal_overflow, page_text_after, screenshot
from cms_support import humanmade_conf, make_user, png
from conftest import encode, make_image
from PIL import PngImagePlugin

PASSWORD = "a-long-desk-password"


@pytest.fixture
def browser():
    yield from chromium_driver(1280, 900)


def _generator_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red flower\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    return encode(make_image(256, 192, seed=21), "PNG", pnginfo=info)


@pytest.mark.django_db(transaction=True)
def test_editor_checks_a_batch_and_watches_verdicts_arrive(
    browser, live_server, settings, tiny_weights, tmp_path, monkeypatch
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from cms_plugin import queueing, services
    from cms_plugin.models import Batch

    # Queued, not scored at commit: the test plays the worker, so the page must catch up.
    settings.HUMANMADE = humanmade_conf(
        tiny_weights, IN_PROCESS=False, CUTOFFS={"human": 0.5, "ai": 1.0}
    )
    settings.MEDIA_ROOT = str(tmp_path / "media")
    services.forget_detector()
    queued: list[int] = []
    monkeypatch.setattr(queueing, "dispatch", queued.append)
    editor = make_user("editor", "view_detection", staff=True)
    editor.set_password(PASSWORD)
    editor.save()
    files = []
    for name, data in (("flower.png", _generator_png()), ("street.png", png(5, 300, 200))):
        (tmp_path / name).write_bytes(data)
        files.append(str(tmp_path / name))

    browser.get(f"{live_server.url}/admin/login/?next=/desk/")
    browser.find_element(By.NAME, "username").send_keys("editor")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    page_text_after(browser, "Drop image files or a ZIP here")
    browser.find_element(By.ID, "files").send_keys("\n".join(files))
    browser.find_element(By.ID, "urls").send_keys("ftp://example.org/not-http.png")
    screenshot(browser, "desk_form")
    browser.find_element(By.CSS_SELECTOR, "#desk-form button[type=submit]").click()

    body = page_text_after(browser, "0 of 2 checked")
    assert "the rest are being scored" in body and "ftp://example.org/not-http.png" in body
    screenshot(browser, "desk_batch_pending")
    assert len(queued) == 2
    for detection_id in queued:  # the worker scores them while the page is open
        services.run_detection(detection_id)
    WebDriverWait(browser, 30).until(
        lambda b: "2 of 2 checked" in b.find_element(By.ID, "hm-progress-text").text
    )
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Likely AI — the file holds generation settings" in body
    assert "flower.png" in body and "street.png" in body and "strong AI evidence" in body
    thumbs = browser.find_elements(By.CSS_SELECTOR, "table.hm-results img")
    WebDriverWait(browser, 10).until(
        lambda b: all(t.get_property("naturalWidth") > 0 for t in thumbs)
    )
    assert horizontal_overflow(browser) == 0
    screenshot(browser, "desk_batch_done")

    batch = Batch.objects.get()
    flower = next(pk for pk, name in batch.names.items() if name == "flower.png")
    browser.find_element(
        By.CSS_SELECTOR, f"#detection-{flower} a[href$='/detections/{flower}/']"
    ).click()
    body = page_text_after(browser, f"Detection #{flower}")
    assert "Likely AI — the file holds generation settings" in body and "flower.png" in body
    heatmap = browser.find_element(By.CSS_SELECTOR, ".hm-heatmap img")
    WebDriverWait(browser, 10).until(lambda b: heatmap.get_property("naturalWidth") == 800)
    screenshot(browser, "desk_report")

    browser.get(f"{live_server.url}/desk/")
    history = page_text_after(browser, "Your batches")
    assert f"Batch #{batch.pk}" in history and "2 images, 1 refused" in history
