"""The demo page in Chromium: the result comes first, above the fold, with the file's name,
its thumbnail, the headline and the heatmap; screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest
from browser_support import chromium_driver, horizontal_overflow, page_text_after, screenshot
from cms_support import humanmade_conf
from conftest import encode, make_image
from PIL import PngImagePlugin

WINDOW = (1280, 900)


@pytest.fixture
def browser():
    yield from chromium_driver(*WINDOW)


@pytest.mark.django_db(transaction=True)
def test_demo_result_is_above_the_fold_with_thumbnail_and_heatmap(
    browser, live_server, settings, tiny_weights, tmp_path
):
    from selenium.webdriver.common.by import By

    from cms_plugin import services

    # The pixels alone never reach likely AI here: the file's settings must decide.
    settings.HUMANMADE = humanmade_conf(tiny_weights, CUTOFFS={"human": 0.5, "ai": 1.0})
    services.forget_detector()
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters", "a harbour\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 256x192"
    )
    path = tmp_path / "harbour.png"
    path.write_bytes(encode(make_image(256, 192, seed=4), "PNG", pnginfo=info))

    browser.get(live_server.url + "/")
    page_text_after(browser, "humanmade demo")
    browser.find_element(By.ID, "file").send_keys(str(path))
    browser.find_element(By.CSS_SELECTOR, "#score-form button[type=submit]").click()
    body = page_text_after(browser, "Score another image")
    assert "Likely AI — the file holds generation settings" in body
    assert "harbour.png" in body and "decided by provenance in the file" in body

    headline = browser.find_element(By.CSS_SELECTOR, ".hm-headline")
    thumb = browser.find_element(By.CSS_SELECTOR, ".hm-thumb")
    assert headline.location["y"] + headline.size["height"] < WINDOW[1] - 150  # above the fold
    assert thumb.get_property("naturalWidth") > 0
    heatmap = browser.find_element(By.CSS_SELECTOR, ".hm-heatmap img")
    assert heatmap.get_property("naturalWidth") == 800
    form = browser.find_element(By.ID, "score-form")
    assert form.location["y"] > headline.location["y"]
    assert horizontal_overflow(browser) == 0
    screenshot(browser, "demo_result")

    browser.find_element(By.CSS_SELECTOR, "#score-form button[type=submit]").click()
    body = page_text_after(browser, "Nothing was scored.")
    assert "could not be scored" not in body
    screenshot(browser, "demo_empty_submit")
