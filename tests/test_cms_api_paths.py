"""Every path under the API's prefix answers in the API's one JSON error shape, also those
no route of the router matches, and also with DEBUG on (the demo's default), where Django
would show its HTML pages: a 500 `RuntimeError` page for a POST without the trailing slash
(APPEND_SLASH cannot redirect a POST), HTML 404 pages for the rest."""

from __future__ import annotations

import pytest
from cms_support import humanmade_conf, make_user, png
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from cms_plugin.models import Detection


@pytest.fixture
def client(settings, tiny_weights, tmp_path):
    settings.HUMANMADE = humanmade_conf(tiny_weights)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.DEBUG = True  # as the demo runs
    client = Client(raise_request_exception=False)
    client.force_login(make_user("paths"))
    return client


def _json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert set(body) == {"error", "message"} and body["message"].strip(), body
    return body


@pytest.mark.django_db
def test_a_post_without_the_trailing_slash_is_a_json_404_that_names_the_right_path(client):
    upload = SimpleUploadedFile("a.png", png(3))
    body = _json_error(client.post("/api/detections", {"file": upload}), 404)
    assert body["error"] == "not_found"
    assert "/api/detections/" in body["message"]  # with the slash
    assert not Detection.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/detections/abc/"),
        ("get", "/api/nonexistent/"),
        ("post", "/api/nonexistent/"),
        ("get", "/api/detections/1/nothing/"),
        ("delete", "/api/detections/abc"),
        ("get", "/api/"),
    ],
)
def test_a_path_no_route_matches_is_a_json_404(client, method, path):
    body = _json_error(getattr(client, method)(path), 404)
    assert body["error"] == "not_found"


@pytest.mark.django_db
def test_a_method_a_route_does_not_take_is_a_json_405(client):
    body = _json_error(client.put("/api/detections/"), 405)
    assert body["error"] == "method_not_allowed"


@pytest.mark.django_db
def test_the_routes_still_answer_and_the_schema_is_still_served(client):
    assert client.get("/api/detections/").status_code == 200
    assert client.get("/api/schema/").status_code == 200
