"""The admin's review queue: the bar says what set the band, and a row with no stored image
shows no (broken) image."""

from __future__ import annotations

import pytest
from cms_support import humanmade_conf, make_user
from django.test import Client

from cms_plugin import services
from cms_plugin.models import Detection


@pytest.fixture
def site(settings, tiny_weights, tmp_path):
    settings.HUMANMADE = humanmade_conf(tiny_weights)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    services.forget_detector()
    yield settings
    services.forget_detector()


@pytest.mark.django_db
def test_the_bar_says_what_set_the_band_and_a_failed_url_shows_no_image(site):
    by_provenance = Detection.objects.create(
        status="needs_review", probability=0.01, band="likely_ai", decided_by="provenance"
    )
    by_pixels = Detection.objects.create(
        status="needs_review",
        probability=0.5,
        band="uncertain",
        decided_by="pixels",
        upload="humanmade/uploads/stored.png",
    )
    failed_url = Detection.objects.create(
        status="failed", source_url="https://nowhere.example/a.jpg", error="The host is unknown."
    )
    client = Client()
    client.force_login(make_user("boss", "review_detection", staff=True))
    page = client.get("/admin/cms_plugin/detection/").content.decode()

    def row(detection: Detection) -> str:
        start = page.index(f'value="{detection.pk}"')
        end = page.find("</tr>", start)
        return page[start:end]

    assert "band set by provenance in the file" in row(by_provenance)
    assert "1% pixels" in row(by_provenance)
    assert "band set by" not in row(by_pixels)
    assert "<img" not in row(failed_url) and "no image" in row(failed_url)
    assert "<img" in row(by_pixels)


@pytest.mark.django_db
def test_the_detection_page_shows_its_headline_once(site):
    detection = Detection.objects.create(
        status="needs_review",
        probability=0.5,
        band="uncertain",
        decided_by="pixels",
        evidence={"summary": "AI-generated: 50% (uncertain)"},
    )
    client = Client()
    client.force_login(make_user("boss", "review_detection", staff=True))
    page = client.get(f"/admin/cms_plugin/detection/{detection.pk}/change/").content.decode()
    # Once as the panel's title; the engine's raw output (a <pre> of JSON) aside.
    import re

    prose = re.sub(r"<pre>.*?</pre>", "", page, flags=re.S)
    assert prose.count("AI-generated: 50% (uncertain)") == 1
