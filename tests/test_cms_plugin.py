"""cms_plugin: settings and checks, upload hooks, the scoring task, the review admin, the
REST API and the dataset export. Scoring runs in-process on the tiny test weights."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

import pytest
from cms_support import ALL_AI, humanmade_conf, make_user, png
from conftest import EXPORT_COLUMNS, MANIFEST_COLUMNS
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse

from cms_plugin import scoring, services
from cms_plugin.conf import humanmade_settings
from cms_plugin.models import Detection, Review
from demo_site.models import NewsPhoto


def _photo(title: str = "p", data: bytes | None = None, seed: int = 0) -> NewsPhoto:
    photo = NewsPhoto(title=title)
    photo.image.save(f"{title}.png", ContentFile(data or png(seed)), save=False)
    photo.save()
    return photo


def _scored(run_commits, data: bytes | None = None, seed: int = 0) -> Detection:
    detection, _ = run_commits(services.score_upload, data or png(seed))
    detection.refresh_from_db()
    return detection


# --- settings and checks --------------------------------------------------------------------


def test_settings_merge_defaults_and_follow_overrides(settings):
    settings.HUMANMADE = {"MAX_UPLOAD_BYTES": 1234}
    assert humanmade_settings.MAX_UPLOAD_BYTES == 1234
    assert humanmade_settings.CUTOFFS is None  # the cut-offs shipped with the weights
    assert humanmade_settings.REVIEW_LIKELY_AI is True
    assert humanmade_settings.CELERY_QUEUE == "humanmade"
    settings.HUMANMADE = {"CELERY_QUEUE": "gpu"}
    assert humanmade_settings.CELERY_QUEUE == "gpu"
    assert humanmade_settings.MAX_UPLOAD_BYTES == 20 * 1024 * 1024
    with pytest.raises(AttributeError):
        humanmade_settings.NO_SUCH_SETTING  # noqa: B018


def test_checks_pass_for_the_demo_settings(cms):
    ids = [m.id for m in checks.run_checks() if m.id and m.id.startswith("cms_plugin")]
    assert ids == []


@pytest.mark.parametrize(
    ("overrides", "expected_id"),
    [
        ({"WATCHED_FIELDS": ["demo_site.NewsPhoto"]}, "cms_plugin.E002"),
        ({"WATCHED_FIELDS": ["demo_site.Nope.image"]}, "cms_plugin.E002"),
        ({"WATCHED_FIELDS": ["demo_site.NewsPhoto.title"]}, "cms_plugin.E002"),
        ({"CUTOFFS": {"human": 0.9, "ai": 0.1}}, "cms_plugin.E003"),
        ({"MAX_UPLOAD_BYTES": 0}, "cms_plugin.E004"),
        ({"REVIEW_LIKELY_AI": "yes"}, "cms_plugin.E005"),
        ({"URL_ALLOW_HOSTS": ["10.0.0.0/33"]}, "cms_plugin.E006"),
        ({"CELERY_QUEUE": ""}, "cms_plugin.E007"),
        ({"IN_PROCESS": False}, "cms_plugin.E008"),  # no broker in the test settings
        ({"SPELLING_MISTAKE": 1}, "cms_plugin.W001"),
    ],
)
def test_checks_report_bad_settings(cms, tiny_weights, overrides, expected_id):
    cms.HUMANMADE = humanmade_conf(tiny_weights, **overrides)
    ids = [m.id for m in checks.run_checks()]
    assert expected_id in ids


def test_check_warns_about_missing_weights(cms, tmp_path):
    cms.HUMANMADE = humanmade_conf(tmp_path / "absent.safetensors")
    assert "cms_plugin.W002" in [m.id for m in checks.run_checks()]


# --- upload hooks ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_new_upload_is_scored_after_commit_and_file_left_alone(cms, run_commits):
    data = png(1)
    photo, callbacks = run_commits(_photo, "first", data)
    assert len(callbacks) == 1
    detection = Detection.objects.get()
    assert detection.content_object == photo
    assert detection.field_name == "image"
    assert detection.status == Detection.Status.NEEDS_REVIEW  # borderline cut-offs
    assert detection.band == "uncertain"
    assert 0.0 <= detection.probability <= 1.0
    assert detection.model_version == "test-0"
    assert detection.sha256 == hashlib.sha256(data).hexdigest()
    assert detection.evidence["image"]["width"] == 96
    assert detection.heatmap  # the engine gave one; stored as a separate file
    photo.image.open("rb")
    assert photo.image.read() == data  # the upload itself is untouched
    photo.image.close()


@pytest.mark.django_db
def test_saving_again_without_a_new_file_queues_nothing(cms, run_commits):
    photo, _ = run_commits(_photo, "a", None, 2)
    photo.title = "renamed"
    _, callbacks = run_commits(photo.save)
    assert callbacks == []
    assert Detection.objects.count() == 1

    def replace():
        photo.image.save("b.png", ContentFile(png(3)), save=True)

    run_commits(replace)
    assert Detection.objects.count() == 2


@pytest.mark.django_db
def test_rolled_back_save_queues_nothing(cms, run_commits):
    def save_then_fail():
        try:
            with transaction.atomic():
                _photo("rolled-back", png(4))
                raise RuntimeError("boom")
        except RuntimeError:
            pass

    _, callbacks = run_commits(save_then_fail)
    assert callbacks == []
    assert not Detection.objects.exists()


@pytest.mark.django_db
def test_same_bytes_are_scored_once(cms, run_commits, monkeypatch):
    data = png(5)
    run_commits(_photo, "one", data)
    calls = []
    real_score = services.get_detector().score
    monkeypatch.setattr(
        services.get_detector(), "score", lambda *a, **k: calls.append(1) or real_score(*a, **k)
    )
    run_commits(_photo, "two", data)
    first, second = Detection.objects.order_by("pk")
    assert calls == []
    assert second.probability == first.probability
    assert second.evidence["deduplicated_from"] == first.pk
    assert second.status == Detection.Status.NEEDS_REVIEW


# --- the task -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_redelivery_does_not_score_twice(cms, run_commits):
    detection = _scored(run_commits, seed=6)
    assert detection.attempts == 1
    assert services.run_detection(detection.pk) == "already_done"
    detection.refresh_from_db()
    assert detection.attempts == 1
    assert services.run_detection(999_999) == "missing"


@pytest.mark.django_db
def test_corrupt_image_fails_with_the_engines_message_without_retrying(cms, run_commits):
    data = png(7)
    detection = Detection()
    detection.upload.save("cut.png", ContentFile(data[: len(data) // 2]))  # truncated
    from cms_plugin.tasks import score_detection

    score_detection.apply(args=[detection.pk])
    detection.refresh_from_db()
    assert detection.status == Detection.Status.FAILED
    assert "truncated" in detection.error.lower() or "damaged" in detection.error.lower()
    assert detection.attempts == 1


@pytest.mark.django_db
def test_transient_errors_are_retried_then_given_up(cms, tiny_weights, run_commits, monkeypatch):
    cms.HUMANMADE = humanmade_conf(tiny_weights, TASK_MAX_RETRIES=2)

    def flaky(detection):
        raise OSError("storage is away")

    monkeypatch.setattr(scoring, "_read_image", flaky)
    detection, _ = run_commits(services.score_upload, png(8))
    detection.refresh_from_db()
    assert detection.status == Detection.Status.FAILED
    assert "storage is away" in detection.error
    assert detection.attempts == 3  # first try and two retries


@pytest.mark.django_db
def test_with_a_broker_the_task_goes_to_the_configured_queue(cms, tiny_weights, monkeypatch):
    cms.HUMANMADE = humanmade_conf(tiny_weights, IN_PROCESS=False, CELERY_QUEUE="gpu")
    from celery import current_app

    from cms_plugin.tasks import score_detection

    sent = {}
    monkeypatch.setattr(current_app, "send_task", lambda name, **kw: sent.update(kw, name=name))
    services.dispatch(42)
    assert sent == {
        "name": score_detection.name,
        "args": [42],
        "queue": "gpu",
        "soft_time_limit": 120,
        "time_limit": 180,
    }
    assert score_detection.acks_late is True


def test_band_decides_whether_a_person_reviews(cms, tiny_weights):
    assert services.status_for_band("uncertain") == "needs_review"
    assert services.status_for_band("likely_ai") == "needs_review"
    assert services.status_for_band("likely_human") == "scored"
    cms.HUMANMADE = humanmade_conf(tiny_weights, REVIEW_LIKELY_AI=False)
    assert services.status_for_band("likely_ai") == "scored"


@pytest.mark.django_db
def test_likely_ai_is_scored_only_when_review_likely_ai_is_off(cms, tiny_weights, run_commits):
    cms.HUMANMADE = humanmade_conf(tiny_weights, CUTOFFS=ALL_AI, REVIEW_LIKELY_AI=False)
    detection = _scored(run_commits, seed=9)
    assert (detection.band, detection.status) == ("likely_ai", "scored")


@pytest.mark.django_db
def test_score_upload_refuses_what_is_not_an_image(cms):
    from detector_core import ImageError

    with pytest.raises(ImageError, match="not an image"):
        services.score_upload(b"just some text, not an image\n" * 3)
    assert not Detection.objects.exists()


# --- REST API -------------------------------------------------------------------------------


def _api(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.django_db
def test_api_needs_authentication(cms):
    response = _api().post("/api/detections/", {"url": "https://example.org/a.png"})
    assert response.status_code in (401, 403)
    assert _api().get("/api/detections/").status_code in (401, 403)


@pytest.mark.django_db
def test_api_upload_is_accepted_then_scored(cms, run_commits):
    user = make_user("writer")
    client = _api(user)
    upload = SimpleUploadedFile("p.png", png(10), "image/png")
    response, _ = run_commits(client.post, "/api/detections/", {"file": upload})
    assert response.status_code == 202
    location = response.headers["Location"]
    assert location.endswith(f"/api/detections/{response.json()['id']}/")
    body = client.get(location).json()
    assert body["status"] == "needs_review"
    assert body["band"] == "uncertain"
    assert body["summary"].startswith("AI-generated: ")
    assert body["model_version"] == "test-0"
    assert "advisory" in body["advisory"]
    assert body["heatmap_available"] is True
    # Each expert's own probability; the tiny test model has the trace network alone.
    assert set(body["experts"]) == {"trace"} and 0 < body["experts"]["trace"] < 1

    again, _ = run_commits(
        client.post, "/api/detections/", {"file": SimpleUploadedFile("q.png", png(10))}
    )
    assert again.json()["id"] == body["id"]  # same bytes, same user: the same detection

    listed = client.get("/api/detections/", {"status": "needs_review", "band": "uncertain"})
    assert [d["id"] for d in listed.json()["results"]] == [body["id"]]
    assert client.get("/api/detections/", {"status": "failed"}).json()["results"] == []
    assert client.get("/api/detections/", {"created_after": "2000-01-01"}).json()["count"] == 1
    assert client.get("/api/detections/", {"created_after": "soon"}).status_code == 400

    stranger = _api(make_user("stranger"))
    assert stranger.get(location).status_code == 404
    assert stranger.get("/api/detections/").json()["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("http://127.0.0.1/x.png", "blocked_url", "Refused: 127.0.0.1 is a loopback address."),
        # The host is named, its address is not: users cannot resolve internal names with it.
        ("http://localhost:8080/x.png", "blocked_url", "localhost resolves to a loopback address."),
        ("http://user:pw@example.org/x.png", "invalid_url", "user name or password"),
    ],
)
def test_api_url_the_fetch_policy_refuses_is_400_at_once(cms, run_commits, url, code, message):
    client = _api(make_user("linker"))
    response, callbacks = run_commits(
        client.post, "/api/detections/", {"url": url}, "application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"] == code
    assert message in response.json()["message"]
    assert "127.0.0.1" not in response.json()["message"] or "127.0.0.1" in url
    assert not Detection.objects.exists() and callbacks == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "status", "code", "message"),
    [
        ({}, 400, "bad_request", "multipart"),
        ({"url": "ftp://example.org/a.png"}, 400, "bad_request", "http"),
        ({"url": "not a url"}, 400, "bad_request", "url"),
        ({"file": "TEXT"}, 400, "not_an_image", "not an image"),
        ({"file": "BIG"}, 413, "file_too_large", "limit"),
        ({"file": "PNG", "url": "https://example.org/a.png"}, 400, "bad_request", "not both"),
    ],
)
def test_api_bad_input_is_a_clear_4xx(cms, data, status, code, message):
    files = {
        "TEXT": SimpleUploadedFile("x.jpg", b"hello, not an image\n" * 5),
        "BIG": SimpleUploadedFile("big.png", b"\0" * (3 * 1024 * 1024)),
        "PNG": SimpleUploadedFile("p.png", png(11)),
    }
    if "file" in data:
        data = {**data, "file": files[data["file"]]}
    response = _api(make_user("sender")).post("/api/detections/", data)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert message in response.json()["message"].lower() or message in response.json()["message"]
    assert not Detection.objects.exists()


@pytest.mark.django_db
def test_api_review_needs_the_permission_and_records_who(cms, run_commits):
    detection = _scored(run_commits, seed=12)
    url = f"/api/detections/{detection.pk}/review/"
    decision = {"decision": "human_made", "note": "the artist's sketches exist"}
    viewer = make_user("viewer", "view_detection")
    assert _api(viewer).post(url, decision).status_code == 403
    reviewer = make_user("reviewer", "review_detection")
    response = _api(reviewer).post(url, decision, "application/json")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["decision"]["value"], body["reviewer"]) == (
        "reviewed",
        "human_made",
        "reviewer",
    )
    assert (body["decision"]["match"], body["decision"]["by"]) == ("this_image", "reviewer")
    assert body["reviewed_at"]
    review = Review.objects.get()
    assert (review.reviewer, review.note) == (reviewer, "the artist's sketches exist")
    bad = _api(reviewer).post(url, {"decision": "maybe"})
    assert bad.status_code == 400


@pytest.mark.django_db
def test_api_review_of_a_failed_detection_is_409(cms):
    detection = Detection.objects.create(status=Detection.Status.FAILED, error="corrupt")
    response = _api(make_user("rev", "review_detection")).post(
        f"/api/detections/{detection.pk}/review/", {"decision": "ai_generated"}
    )
    assert response.status_code == 409
    assert response.json()["error"] == "not_reviewable"


@pytest.mark.django_db
def test_api_token_authentication(cms, run_commits):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=make_user("bot"))
    client = Client(headers={"Authorization": f"Token {token.key}"})
    response, _ = run_commits(
        client.post, "/api/detections/", {"file": SimpleUploadedFile("p.png", png(13))}
    )
    assert response.status_code == 202
    assert client.get(response.headers["Location"]).status_code == 200


@pytest.mark.django_db
def test_api_submissions_are_throttled(cms, tiny_weights):
    from django.core.cache import cache

    cache.clear()
    cms.HUMANMADE = humanmade_conf(tiny_weights, API_SUBMIT_RATE="2/minute")
    client = _api(make_user("eager"))
    codes = [
        client.post("/api/detections/", {"url": "https://example.org/a.png"}).status_code
        for _ in range(3)
    ]
    assert codes == [202, 202, 429]
    cache.clear()


def test_openapi_schema_is_served(cms):
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    text = response.content.decode()
    assert "/api/detections/{id}/review/" in text


# --- review in the admin --------------------------------------------------------------------


@pytest.mark.django_db
def test_review_queue_lists_needs_review_first_oldest_first(cms):
    old_scored = Detection.objects.create(status="scored", probability=0.1, band="likely_human")
    first = Detection.objects.create(status="needs_review", probability=0.5, band="uncertain")
    second = Detection.objects.create(status="needs_review", probability=0.6, band="uncertain")
    client = _api(make_user("queue", "review_detection", staff=True))
    response = client.get(reverse("admin:cms_plugin_detection_changelist"))
    assert response.status_code == 200
    ids = [d.pk for d in response.context["cl"].result_list]
    assert ids == [first.pk, second.pk, old_scored.pk]
    html = response.content.decode()
    assert "Review queue" in html
    assert "advisory" in html
    assert "Confirm human-made" in html and "Confirm AI-generated" in html
    filtered = client.get(
        reverse("admin:cms_plugin_detection_changelist"), {"band": "likely_human"}
    )
    assert [d.pk for d in filtered.context["cl"].result_list] == [old_scored.pk]


@pytest.mark.django_db
def test_admin_one_click_review_records_who_and_when(cms, run_commits):
    detection = _scored(run_commits, seed=14)
    reviewer = make_user("desk", "review_detection", staff=True)
    client = _api(reviewer)
    page = client.get(reverse("admin:cms_plugin_detection_change", args=[detection.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "advisory" in html and detection.summary in html
    assert 'id="hm-confirm-human"' in html
    assert client.get(reverse("admin:cms_plugin_detection_heatmap", args=[detection.pk])).headers[
        "Content-Type"
    ] == ("image/png")
    thumb = client.get(reverse("admin:cms_plugin_detection_thumbnail", args=[detection.pk]))
    assert thumb.headers["Content-Type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"

    response = client.post(
        reverse("admin:cms_plugin_detection_review", args=[detection.pk]),
        {"decision": "ai_generated", "note": "seen before"},
    )
    assert response.status_code == 302
    detection.refresh_from_db()
    assert detection.status == "reviewed"
    assert (detection.decision, detection.reviewer, detection.note) == (
        "ai_generated",
        reviewer,
        "seen before",
    )
    assert detection.reviewed_at is not None


@pytest.mark.django_db
def test_admin_bulk_action_with_note(cms):
    rows = [
        Detection.objects.create(status="needs_review", probability=0.5, band="uncertain")
        for _ in range(2)
    ]
    pending = Detection.objects.create(status="pending")
    client = _api(make_user("bulk", "review_detection", staff=True))
    response = client.post(
        reverse("admin:cms_plugin_detection_changelist"),
        {
            "action": "confirm_human_made",
            "_selected_action": [r.pk for r in rows] + [pending.pk],
            "note": "batch from the photo desk",
        },
    )
    assert response.status_code == 302
    assert set(Detection.objects.filter(status="reviewed").values_list("decision", "note")) == {
        ("human_made", "batch from the photo desk")
    }
    pending.refresh_from_db()
    assert pending.status == "pending"


@pytest.mark.django_db
def test_admin_without_review_permission_cannot_decide(cms):
    detection = Detection.objects.create(status="needs_review", probability=0.5, band="uncertain")
    client = _api(make_user("looker", "view_detection", staff=True))
    page = client.get(reverse("admin:cms_plugin_detection_changelist"))
    assert page.status_code == 200
    assert "Confirm human-made" not in page.content.decode()
    change = client.get(reverse("admin:cms_plugin_detection_change", args=[detection.pk]))
    assert 'id="hm-review-form"' not in change.content.decode()
    response = client.post(
        reverse("admin:cms_plugin_detection_review", args=[detection.pk]),
        {"decision": "human_made"},
    )
    assert response.status_code == 403
    detection.refresh_from_db()
    assert detection.status == "needs_review"


# --- export ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_writes_reviewed_images_in_the_training_manifest_format(
    cms, tiny_weights, run_commits, tmp_path
):
    cms.HUMANMADE = humanmade_conf(tiny_weights, EXPORT_FIELDS=["api"])
    reviewer = make_user("exporter", "review_detection")
    human = _scored(run_commits, seed=15)
    ai = _scored(run_commits, seed=16)
    _scored(run_commits, seed=17)  # not reviewed: not exported
    services.record_review(human, reviewer, "human_made")
    services.record_review(ai, reviewer, "ai_generated")
    out = tmp_path / "export"
    stdout = io.StringIO()
    call_command("humanmade_export", str(out), stdout=stdout)
    assert "Exported 2" in stdout.getvalue()
    with (out / "manifest.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == EXPORT_COLUMNS
        rows = list(reader)
    assert sorted(r["label"] for r in rows) == ["ai", "human"]
    for row in rows:
        path = out / row["file"]
        assert path.is_file()
        sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        assert sha256 == row["sha256_original"] == row["sha256"]
        split = "val" if int(sha256[:8], 16) % 100 < 20 else "train"
        assert row["split"] == split
        assert row["file"].startswith(f"images/{split}/{row['label']}/")
        assert (row["width"], row["height"], row["format"]) == ("96", "64", "PNG")
        assert (row["label_origin"], row["model_version"]) == ("reviewer", "test-0")
    shared = Path(__file__).resolve().parent.parent.parent / "shared/datasets/manifest.csv"
    if shared.is_file():
        with shared.open(newline="") as fh:
            assert next(csv.reader(fh)) == MANIFEST_COLUMNS


# --- the demo's newsroom ------------------------------------------------------------------


@pytest.mark.django_db
def test_newsroom_photo_added_in_the_admin_lands_in_the_review_queue(cms, run_commits):
    editor = get_user_model().objects.create_superuser("chief", "", "pw-chief-editor")
    client = _api(editor)
    upload = SimpleUploadedFile("front-page.png", png(18), "image/png")
    response, _ = run_commits(
        client.post,
        reverse("admin:demo_site_newsphoto_add"),
        {"title": "Front page", "credit": "staff", "image": upload},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    photo = NewsPhoto.objects.get()
    detection = Detection.objects.get()
    assert (detection.content_object, detection.status) == (photo, "needs_review")
    listing = client.get(reverse("admin:demo_site_newsphoto_changelist")).content.decode()
    assert detection.summary in listing


@pytest.mark.django_db
def test_api_size_check_without_the_demos_upload_handler(cms, tiny_weights):
    cms.FILE_UPLOAD_HANDLERS = [
        "django.core.files.uploadhandler.MemoryFileUploadHandler",
        "django.core.files.uploadhandler.TemporaryFileUploadHandler",
    ]
    cms.HUMANMADE = humanmade_conf(tiny_weights, MAX_UPLOAD_BYTES=1000)
    response = _api(make_user("big")).post(
        "/api/detections/", {"file": SimpleUploadedFile("p.png", png(19))}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "file_too_large"


@pytest.mark.parametrize("page", ["/api/schema/swagger-ui/", "/api/schema/redoc/"])
def test_browsable_schema_is_served_with_local_assets(cms, page):
    from django.contrib.staticfiles import finders

    response = Client().get(page)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "/api/schema/" in html
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert assets and all(a.startswith("/static/drf_spectacular_sidecar/") for a in assets)
    assert "cdn" not in html.lower() and "https://" not in html.split("<body")[0]
    for asset in assets:  # each one is in the installed package, not on the network
        assert finders.find(asset.removeprefix("/static/")), asset
