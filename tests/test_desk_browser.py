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
        By.CSS_SELECTOR, f"#detection-{flower} a[href*='/detections/{flower}/?batch=']"
    ).click()
    body = page_text_after(browser, f"Detection #{flower}")
    assert "Likely AI — the file holds generation settings" in body and "flower.png" in body
    heatmap = browser.find_element(By.CSS_SELECTOR, ".hm-heatmap img")
    WebDriverWait(browser, 10).until(lambda b: heatmap.get_property("naturalWidth") == 800)
    screenshot(browser, "desk_report")

    browser.get(f"{live_server.url}/desk/")
    history = page_text_after(browser, "Your batches")
    assert f"Batch #{batch.pk}" in history and "2 images, 1 refused" in history


def _log_in(browser, live_server, username: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server.url}/admin/login/?next=/desk/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    page_text_after(browser, "Drop image files or a ZIP here")


DROP = """
const [name, b64, zoneSelector] = arguments;
const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name, {type: "image/png"}));
const zone = document.querySelector(zoneSelector);
for (const type of ["dragenter", "dragover", "drop"]) {
  const init = {dataTransfer: transfer, bubbles: true, cancelable: true};
  zone.dispatchEvent(new DragEvent(type, init));
}
return document.getElementById("files").files.length;
"""


@pytest.mark.django_db(transaction=True)
def test_dropping_files_works_and_the_upload_shows_its_progress(
    browser, live_server, settings, tiny_weights, tmp_path, monkeypatch
):
    import base64

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from cms_plugin import services
    from cms_plugin.models import Batch

    settings.HUMANMADE = humanmade_conf(tiny_weights, IN_PROCESS=False)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    services.forget_detector()
    monkeypatch.setattr(services, "dispatch", lambda pk: True)
    editor = make_user("dropper", "view_detection", staff=True)
    editor.set_password(PASSWORD)
    editor.save()
    _log_in(browser, live_server, "dropper")

    # A real drop event, carrying files, on the drop zone.
    small = base64.b64encode(png(7)).decode()
    assert browser.execute_script(DROP, "dropped.png", small, "label.drop") == 1
    large = base64.b64encode(encode(make_image(700, 700, seed=8))).decode()  # ~1.4 MB of noise
    assert browser.execute_script(DROP, "second.png", large, "label.drop") == 2
    chosen = browser.find_element(By.ID, "chosen").text
    assert "2 files chosen: dropped.png, second.png" in chosen
    screenshot(browser, "desk_dropped")

    # A slow uplink, so that the progress can be seen moving.
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 300_000},
    )
    browser.find_element(By.CSS_SELECTOR, "#desk-form button[type=submit]").click()
    WebDriverWait(browser, 20).until(
        lambda b: (
            "Uploading… " in b.find_element(By.ID, "upload-text").text
            and 0 < float(b.find_element(By.ID, "upload-progress").get_property("value")) < 100
        )
    )
    assert browser.find_element(By.ID, "upload-status").is_displayed()
    screenshot(browser, "desk_upload_progress")
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    body = page_text_after(browser, "0 of 2 checked")
    batch = Batch.objects.get()
    assert sorted(batch.names.values()) == ["dropped.png", "second.png"]
    assert "dropped.png" in body


@pytest.mark.django_db(transaction=True)
def test_long_names_stay_on_one_line_at_800_px(
    browser, live_server, settings, tiny_weights, tmp_path
):
    from selenium.webdriver.common.by import By

    from cms_plugin import services
    from cms_plugin.desk.submissions import submit_batch
    from cms_plugin.models import Batch

    settings.HUMANMADE = humanmade_conf(tiny_weights)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    services.forget_detector()
    editor = make_user("narrow", "view_detection", staff=True)
    editor.set_password(PASSWORD)
    editor.save()
    from django.core.files.uploadedfile import SimpleUploadedFile

    long_name = "agency-photo-2026-12-06-press-conference-city-hall-front-row-final-v2.png"
    batch = submit_batch(editor, [SimpleUploadedFile(long_name, png(9), "image/png")])
    assert Batch.objects.filter(pk=batch.pk).exists()
    browser.set_window_size(800, 900)
    _log_in(browser, live_server, "narrow")
    browser.get(f"{live_server.url}/desk/batches/{batch.pk}/")
    page_text_after(browser, "1 of 1 checked")
    cell = browser.find_element(By.CSS_SELECTOR, "td.hm-name")
    assert cell.get_attribute("title") == long_name  # the whole name on hover
    line = browser.execute_script(
        "const s = arguments[0].querySelector('span');"
        "return [s.getBoundingClientRect().height, parseFloat(getComputedStyle(s).lineHeight)"
        " || 20, s.scrollWidth > s.clientWidth];",
        cell,
    )
    assert line[0] <= line[1] * 1.5 and line[2]  # one line, cut with an ellipsis
    assert horizontal_overflow(browser) == 0  # every column, the report link too, fits
    screenshot(browser, "desk_batch_800px")


@pytest.mark.django_db(transaction=True)
def test_a_reviewers_decision_shows_first_on_a_copy_sent_again(
    browser, live_server, settings, tiny_weights, tmp_path
):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from selenium.webdriver.common.by import By
    from test_cms_matching import encoded, picture, resized_jpeg

    from cms_plugin import services
    from cms_plugin.desk.submissions import submit_batch

    settings.HUMANMADE = humanmade_conf(tiny_weights)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    services.forget_detector()
    editor = make_user("second", "view_detection", staff=True)
    editor.set_password(PASSWORD)
    editor.save()
    first = submit_batch(
        make_user("first", "view_detection"),
        [SimpleUploadedFile("agency-original.png", encoded(picture(1)), "image/png")],
    ).detections.get()
    services.record_review(first, make_user("rev", "review_detection"), "human_made")
    again = submit_batch(
        editor, [SimpleUploadedFile("forwarded.jpg", resized_jpeg(picture(1)), "image/jpeg")]
    )
    copy = again.detections.get()

    _log_in(browser, live_server, "second")
    browser.get(f"{live_server.url}/desk/batches/{again.pk}/")
    body = page_text_after(browser, "1 of 1 checked")
    row = browser.find_element(By.ID, f"detection-{copy.pk}").text
    assert row.index("Confirmed human-made by a reviewer") < row.index("Model:")
    assert "near-duplicate" in row and "agency-original" not in body
    screenshot(browser, "desk_batch_decision_first")
    browser.get(f"{live_server.url}/desk/detections/{copy.pk}/?batch={again.pk}")
    report = page_text_after(browser, "Confirmed human-made by a reviewer")
    assert report.index("Confirmed human-made by a reviewer") < report.index("pixels:")
    screenshot(browser, "desk_report_decision_first")
