"""The REST API's refusals: at once, in one JSON shape, and without telling a user about
other users' uploads."""

from __future__ import annotations

import pytest
from cms_support import humanmade_conf, make_user, png
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from test_hostile_inputs import tall_png

from cms_plugin import services
from cms_plugin.models import Detection


@pytest.fixture
def run_commits(django_capture_on_commit_callbacks):
    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def _client(user=None, **headers) -> Client:
    client = Client(headers=headers)
    if user is not None:
        client.force_login(user)
    return client


def _shape(response) -> dict:
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert body["message"].strip(), body
    return body


@pytest.mark.django_db
def test_an_image_under_32_px_is_refused_at_once(cms, run_commits):
    client = _client(make_user("tiny"))
    upload = SimpleUploadedFile("icon.png", png(90, width=31, height=200))
    response = run_commits(client.post, "/api/detections/", {"file": upload})
    assert response.status_code == 400  # used to be 202, then a failed task
    body = _shape(response)
    assert body["error"] == "image_too_small"
    assert "31×200" in body["message"]
    assert not Detection.objects.exists()


@pytest.mark.django_db
def test_a_very_tall_upload_is_scored_by_the_task(cms, run_commits):
    client = _client(make_user("tall"))
    response = run_commits(
        client.post, "/api/detections/", {"file": SimpleUploadedFile("t.png", tall_png())}
    )
    assert response.status_code == 202
    detection = Detection.objects.get()
    # It used to be retried five times, then failed with "could not read the image".
    assert detection.status == Detection.Status.NEEDS_REVIEW, detection.error
    assert detection.attempts == 1 and 0.0 <= detection.probability <= 1.0


@pytest.mark.django_db
def test_dedup_never_shows_another_users_detection(cms, run_commits):
    data = png(91)
    first = run_commits(services.score_upload, data, user=make_user("alice"))
    bob = make_user("bob")
    response = run_commits(
        _client(bob).post, "/api/detections/", {"file": SimpleUploadedFile("same.png", data)}
    )
    assert response.status_code == 202
    second = Detection.objects.get(pk=response.json()["id"])
    assert second.evidence["deduplicated_from"] == first.pk  # kept for reviewers
    body = _client(bob).get(f"/api/detections/{second.pk}/").json()
    assert body["status"] == "needs_review"
    assert "deduplicated_from" not in body["evidence"]  # used to show alice's id
    assert body["evidence"]["model_version"] == "test-0"  # the rest of the evidence stays
    listed = _client(bob).get("/api/detections/").json()["results"]
    assert all("deduplicated_from" not in row["evidence"] for row in listed)
    reviewer = _client(make_user("rev", "review_detection"))
    seen = reviewer.get(f"/api/detections/{second.pk}/").json()
    assert seen["evidence"]["deduplicated_from"] == first.pk


@pytest.mark.django_db
def test_a_bad_or_missing_token_is_401_json(cms):
    from rest_framework.authtoken.models import Token

    bad = _client(Authorization="Token 0123456789abcdef").get("/api/detections/")
    assert bad.status_code == 401  # used to be 403
    assert _shape(bad)["error"] == "authentication_failed"
    assert bad.headers["WWW-Authenticate"] == "Token"
    missing = _client().post("/api/detections/", {"url": "https://example.org/a.png"})
    assert missing.status_code == 401
    assert _shape(missing)["error"] == "not_authenticated"
    token = Token.objects.create(user=make_user("good"))
    assert _client(Authorization=f"Token {token.key}").get("/api/detections/").status_code == 200


@pytest.mark.django_db
def test_every_error_has_one_json_shape(cms, settings):
    user = make_user("shape")
    client = _client(user)
    cases = [
        (client.get("/api/detections/999999/"), 404, "not_found"),
        (client.delete("/api/detections/"), 405, "method_not_allowed"),
        (client.get("/api/detections/", {"created_after": "soon"}), 400, "bad_request"),
        (client.post("/api/detections/", "{not json", "application/json"), 400, "bad_request"),
        (client.post("/api/detections/", {}), 400, "bad_request"),
        (
            client.post("/api/detections/999999/review/", {"decision": "human_made"}),
            403,
            "permission_denied",
        ),
    ]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000  # Django refuses the body: used to be HTML
    big = client.post("/api/detections/", {"url": "https://example.org/" + "a" * 2000})
    cases.append((big, 400, "bad_request"))
    for response, status, code in cases:
        assert response.status_code == status, response.content[:300]
        assert response["Content-Type"] == "application/json", response.content[:300]
        assert _shape(response)["error"] == code


@pytest.mark.django_db
def test_throttled_submissions_keep_the_shape_and_retry_after(cms, tiny_weights):
    from django.core.cache import cache

    cache.clear()
    cms.HUMANMADE = humanmade_conf(tiny_weights, API_SUBMIT_RATE="1/minute")
    client = _client(make_user("eager"))
    client.post("/api/detections/", {})
    response = client.post("/api/detections/", {})
    assert response.status_code == 429
    assert _shape(response)["error"] == "throttled"
    assert int(response.headers["Retry-After"]) > 0
