"""cms_plugin with videos and animations: the REST API, a watched field, the settings check
and the export (clips are not training images). Scoring runs in-process on the tiny
weights; tests/test_cms_integration.py has a real Celery worker scoring a video upload."""

from __future__ import annotations

import pytest
from cms_support import humanmade_conf, make_user
from django.core import checks
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from video_support import make_animation, make_audio_only, make_clip

from cms_plugin import services
from cms_plugin.models import Detection
from demo_site.models import NewsPhoto

pytest.importorskip("av")


def _clip_bytes(tmp_path, name="clip.mp4", **kwargs) -> bytes:
    return make_clip(tmp_path / name, **{"seconds": 2, **kwargs}).read_bytes()


@pytest.mark.django_db
def test_a_video_sent_to_the_api_is_scored_as_a_clip(cms, run_commits, tmp_path):
    client = Client()
    client.force_login(make_user("editor"))
    upload = SimpleUploadedFile("clip.mp4", _clip_bytes(tmp_path), "video/mp4")
    response, _ = run_commits(client.post, "/api/detections/", {"file": upload})
    assert response.status_code == 202, response.content
    body = client.get(response.headers["Location"]).json()
    assert body["status"] == "needs_review" and body["band"] == "uncertain"  # BORDERLINE
    assert "— video, " in body["summary"]
    detection = Detection.objects.get(pk=body["id"])
    assert detection.upload.name.endswith(".mp4")
    timeline = detection.evidence["frames"]
    assert len(timeline) == detection.evidence["coverage"]["frames_scored"] >= 2
    assert detection.probability == pytest.approx(detection.evidence["ai_probability"], abs=1e-6)
    assert all("time_s" in f and "ai_probability" in f for f in timeline)
    # Where an image has its heatmap figure, a clip has its timeline figure.
    assert detection.heatmap.name.endswith("-timeline.png")
    with detection.heatmap.open("rb") as fh, Image.open(fh) as figure:
        assert figure.format == "PNG" and figure.width == 800


@pytest.mark.django_db(transaction=True)
def test_the_desk_report_shows_a_clips_timeline(cms, tmp_path):
    from django.urls import reverse

    client = Client()
    client.force_login(make_user("desk", "review_detection"))
    upload = SimpleUploadedFile(
        "clip.webm",
        _clip_bytes(tmp_path, "clip.webm", codec="libvpx-vp9", container="webm"),
        "video/webm",
    )
    response = client.post("/desk/", {"files": [upload], "urls": ""})
    assert response.status_code == 302, response.content[:2000]
    detection = Detection.objects.get()
    assert detection.status == Detection.Status.NEEDS_REVIEW, detection.error
    page = client.get(reverse("cms_plugin_desk:report", args=[detection.pk])).content.decode()
    assert "each sampled frame over the clip" in page
    assert "where the model saw AI traces" not in page
    figure = client.get(reverse("cms_plugin_desk:heatmap", args=[detection.pk]))
    assert figure.status_code == 200 and figure["Content-Type"] == "image/png"


@pytest.mark.django_db
def test_a_watched_field_holding_an_animation_is_scored_like_an_image(cms, run_commits):
    photo = NewsPhoto(title="loop")
    photo.image.save("loop.gif", ContentFile(make_animation("GIF", n=10)), save=False)
    run_commits(photo.save)
    detection = Detection.objects.get(object_id=str(photo.pk))
    assert detection.status == Detection.Status.NEEDS_REVIEW, detection.error
    assert detection.evidence["media"]["kind"] == "animation"
    assert detection.evidence["media"]["frame_count"] == 10


@pytest.mark.django_db
def test_a_damaged_or_audio_only_upload_fails_with_the_decoders_message(cms, run_commits, tmp_path):
    audio = make_audio_only(tmp_path / "song.mp4").read_bytes()
    detection, _ = run_commits(services.score_upload, audio)
    detection.refresh_from_db()
    assert detection.status == Detection.Status.FAILED
    assert "only audio" in detection.error
    clip = _clip_bytes(tmp_path, "cut.mp4")
    detection, _ = run_commits(services.score_upload, clip[: len(clip) // 2])
    detection.refresh_from_db()
    assert detection.status == Detection.Status.FAILED
    assert "damaged or truncated" in detection.error


@pytest.mark.django_db
def test_video_limits_come_from_the_settings(cms, settings, run_commits, tmp_path, tiny_weights):
    settings.HUMANMADE = humanmade_conf(tiny_weights, VIDEO_LIMITS={"frames_scored": 3})
    detection, _ = run_commits(services.score_upload, _clip_bytes(tmp_path))
    detection.refresh_from_db()
    assert len(detection.evidence["frames"]) == 3
    settings.HUMANMADE = humanmade_conf(tiny_weights, VIDEO_LIMITS={"frames": 3})
    ids = [m.id for m in checks.run_checks() if m.id.startswith("cms_plugin")]
    assert "cms_plugin.E011" in ids


@pytest.mark.django_db
def test_clips_are_not_exported_as_training_images(cms, settings, run_commits, tmp_path):
    from cms_plugin.export import plan_export

    reviewer = make_user("reviewer")
    clip, _ = run_commits(services.score_upload, _clip_bytes(tmp_path))
    image, _ = run_commits(services.score_upload, make_animation("PNG", n=1))  # a still PNG
    for detection in (clip, image):
        detection.refresh_from_db()
        services.record_review(detection, reviewer, "human_made")
    plan = plan_export(export_fields=["api"], collect_confident=False, since=None)
    assert [c.detection.pk for c in plan.candidates] == [image.pk]
