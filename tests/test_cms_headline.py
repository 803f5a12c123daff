"""cms_plugin shows the engine's headline: what decided the band, in the admin and the API."""

from __future__ import annotations

import json

import pytest
from cms_support import humanmade_conf, logged_in, make_user, png
from conftest import encode, make_image
from django.urls import reverse
from PIL import PngImagePlugin

from cms_plugin import services
from cms_plugin.models import Detection

NEVER_AI = {"human": 0.5, "ai": 1.0}  # the pixels alone never reach likely AI


@pytest.fixture
def cms(settings, tiny_weights, tmp_path):
    settings.HUMANMADE = humanmade_conf(tiny_weights, CUTOFFS=NEVER_AI)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    services.forget_detector()
    yield settings
    services.forget_detector()


def _generator_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a lighthouse\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 2, Size: 96x64, "
        "Model hash: abc123, Model: v1-5-pruned",
    )
    return encode(make_image(96, 64, seed=8), "PNG", pnginfo=info)


def _scored(django_capture_on_commit_callbacks, data: bytes, user=None) -> Detection:
    with django_capture_on_commit_callbacks(execute=True):
        detection = services.score_upload(data, user=user)
    detection.refresh_from_db()
    return detection


@pytest.mark.django_db
def test_provenance_decision_reaches_the_admin_and_the_api(cms, django_capture_on_commit_callbacks):
    detection = _scored(django_capture_on_commit_callbacks, _generator_png())
    assert detection.band == "likely_ai" and detection.decided_by == "provenance"
    assert detection.summary.startswith("Likely AI — the file holds generation settings")
    assert f"(pixels alone: {detection.percent}%)" in detection.summary

    client = logged_in(make_user("why", "review_detection", staff=True))
    listing = client.get(reverse("admin:cms_plugin_detection_changelist")).content.decode()
    assert "<th" in listing and ">why<" in listing.replace("</a>", "<")
    assert "provenance in the file" in listing
    assert 'class="hm-fill hm-ai"' in listing  # the bar takes the band's colour

    page = client.get(reverse("admin:cms_plugin_detection_change", args=[detection.pk]))
    html = page.content.decode()
    assert detection.summary in html
    assert "strong AI evidence" in html and "<strong>strong_ai</strong>" not in html
    assert "decided by: <strong>provenance in the file</strong>" in html
    trace = detection.expert_probabilities["trace"]  # the tiny model's one expert
    assert f"Each expert, before fusion: trace <strong>{trace:.0%}</strong>" in html
    assert f"trace: {trace:.0%}" in html  # and in the read-only fields

    body = client.get(f"/api/detections/{detection.pk}/").json()
    assert body["decided_by"] == "provenance" and body["summary"] == detection.summary


@pytest.mark.django_db
def test_pixel_decision_and_band_colours_in_the_queue(cms, settings, tiny_weights):
    rows = [
        Detection.objects.create(
            status="scored", probability=0.1998, band="likely_human", decided_by="pixels"
        ),
        Detection.objects.create(
            status="needs_review", probability=0.5, band="uncertain", decided_by="pixels"
        ),
    ]
    # The stored headline is absent here (rows scored before headlines were stored).
    assert rows[0].summary == "No sign of AI generation found: 19%"
    listing = (
        logged_in(make_user("colours", "review_detection", staff=True))
        .get(reverse("admin:cms_plugin_detection_changelist"))
        .content.decode()
    )
    assert 'class="hm-fill hm-human" style="width:19%"' in listing
    assert 'class="hm-fill hm-uncertain" style="width:50%"' in listing
    assert "pixel score" in listing


@pytest.mark.django_db
def test_engine_output_is_written_without_unicode_escapes(cms, django_capture_on_commit_callbacks):
    detection = _scored(django_capture_on_commit_callbacks, png(5, 160, 120))
    page = (
        logged_in(make_user("json", "review_detection", staff=True))
        .get(reverse("admin:cms_plugin_detection_change", args=[detection.pk]))
        .content.decode()
    )
    assert "resized to 0.75×" in page  # a stability variant's name, with its × sign
    assert "\\u00d7" not in page
    assert json.loads(json.dumps(detection.evidence))["decided_by"] in ("pixels", "instability")


@pytest.mark.django_db
def test_the_bots_remote_mode_reads_the_real_api_answer(cms, django_capture_on_commit_callbacks):
    pytest.importorskip("discord")
    from discord_bot.scoring import ScoreResult
    from discord_bot.utils.formatting import check_answer

    user = make_user("bot")
    detection = _scored(django_capture_on_commit_callbacks, _generator_png(), user)
    body = logged_in(user).get(f"/api/detections/{detection.pk}/").json()
    result = ScoreResult.from_api(body)
    assert result.ai_probability == pytest.approx(detection.probability)
    assert result.decided_by == "provenance" and result.summary() == detection.summary
    assert any("[strong_ai]" in line and "AUTOMATIC1111" in line for line in result.evidence)
    assert len(result.reasons) == 1 and "pixels alone scored" in result.reasons[0]
    assert len(ScoreResult.from_api(body).evidence) == 1  # listed once, as evidence
    assert f"**{detection.summary}**" in check_answer([("a.png", result)])
