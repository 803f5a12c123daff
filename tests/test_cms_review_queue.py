"""The admin's review queue: the bar says what set the band, and a row with no stored image
shows no (broken) image."""

from __future__ import annotations

import pytest
from cms_support import make_user
from django.test import Client

from cms_plugin.models import Detection


@pytest.mark.django_db
def test_the_bar_says_what_set_the_band_and_a_failed_url_shows_no_image(fresh_cms):
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
def test_the_detection_page_shows_its_headline_once(fresh_cms):
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


def _huge_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit PNG of width × height, all black: tiny once compressed."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


@pytest.mark.django_db
def test_a_huge_png_added_to_a_watched_model_is_refused_for_its_pixels(fresh_cms):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from demo_site.models import NewsPhoto

    client = Client()
    client.force_login(
        make_user("editor", "add_newsphoto", "view_newsphoto", "change_newsphoto", staff=True)
    )
    upload = SimpleUploadedFile("huge.png", _huge_png(), "image/png")
    response = client.post(
        "/admin/demo_site/newsphoto/add/", {"title": "huge", "image": upload, "credit": ""}
    )
    assert response.status_code == 200  # the form again, with the reason
    page = response.content.decode()
    assert "30000×30000 pixels" in page and "the limit is" in page
    assert "corrupted image" not in page
    assert not NewsPhoto.objects.exists()
