"""The browsable API schema renders in Chromium from local assets only (no network here)."""

from __future__ import annotations

import pytest
from browser_support import chromium_driver, screenshot
from cms_support import humanmade_conf


@pytest.fixture
def browser():
    yield from chromium_driver(1280, 900)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("page", "selector", "name"),
    [
        ("/api/schema/swagger-ui/", ".opblock-summary-path", "api_swagger_ui"),
        ("/api/schema/redoc/", "[data-section-id^='tag/']", "api_redoc"),
    ],
)
def test_schema_pages_render_offline(
    browser, live_server, settings, tiny_weights, page, selector, name
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    settings.HUMANMADE = humanmade_conf(tiny_weights)
    browser.get(live_server.url + page)
    WebDriverWait(browser, 30).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, selector))
    )
    assert "/api/detections/" in browser.find_element(By.TAG_NAME, "body").text
    # Scripts, styles and the schema come from this server. (ReDoc's footer still points an
    # <img> at its vendor's logo; offline it is just not drawn, and nothing depends on it.)
    requested = browser.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.initiatorType !== 'img').map(e => e.name)"
    )
    assert requested and all(url.startswith(live_server.url) for url in requested), requested
    screenshot(browser, name)
