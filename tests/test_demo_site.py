"""The demo site: the page scores uploads and URLs, refuses bad input with 400 (never 500),
keeps CSRF on, and `manage.py demo` prepares the database, admin and model idempotently.

Django is configured here rather than in pytest's config, so the engine's own test files
run in the same session without it.
"""

from __future__ import annotations

import hashlib
import io
import os
from html import unescape

import pytest

pytest.importorskip("django")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")

import django  # noqa: E402

django.setup()

from conftest import encode, make_image  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.management.base import CommandError  # noqa: E402
from django.test import Client  # noqa: E402

from demo_site.engine import get_detector  # noqa: E402
from detector_core.headline import percent_in_band  # noqa: E402

ADVISORY = "evidence for a human reviewer, never a verdict on its own"
BAND_LABELS = ("likely human", "uncertain", "likely AI")


@pytest.fixture
def demo_settings(settings, tiny_weights):
    settings.HUMANMADE = {"WEIGHTS": str(tiny_weights), "MAX_UPLOAD_BYTES": 20 * 1024 * 1024}
    return settings


def _png(name: str = "picture.png", seed: int = 0) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, encode(make_image(96, 64, seed=seed)), "image/png")


def test_page_shows_form_and_advisory(client, demo_settings):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert ADVISORY in html
    assert 'name="file"' in html and 'name="url"' in html
    assert "csrfmiddlewaretoken" in html


def test_uploaded_png_is_scored(client, demo_settings):
    data = encode(make_image(96, 64, seed=1))
    response = client.post("/", {"file": SimpleUploadedFile("p.png", data, "image/png")})
    assert response.status_code == 200
    html = response.content.decode()
    assert "AI-generated:" in html
    assert any(label in html for label in BAND_LABELS)
    assert hashlib.sha256(data).hexdigest() in html
    assert "96×64" in html and "PNG" in html
    assert "test-0" in html  # model version of the tiny weights
    assert ADVISORY in html
    verdict = response.context["verdict"]
    assert response.context["percent"] == percent_in_band(
        verdict.ai_probability, verdict.cutoffs, 1
    )
    assert "p.png" in html  # the file name, beside its thumbnail
    assert html.count('src="data:image/jpeg;base64,') == 2  # the thumbnail and the heatmap
    assert html.index('class="hm-verdict"') < html.index('id="score-form"')  # result first


def test_text_named_jpg_is_refused_with_400(client, demo_settings):
    upload = SimpleUploadedFile("x.jpg", b"hello, this is just text\n" * 4, "image/jpeg")
    response = client.post("/", {"file": upload})
    assert response.status_code == 400
    assert "The file is not an image" in response.content.decode()
    assert "AI-generated:" not in response.content.decode()


@pytest.mark.parametrize("handlers", ["demo", "django-default"])
def test_oversized_upload_is_refused_with_400(client, demo_settings, handlers):
    demo_settings.HUMANMADE = {**demo_settings.HUMANMADE, "MAX_UPLOAD_BYTES": 1000}
    if handlers == "django-default":  # the view's own size check, should the handler be gone
        demo_settings.FILE_UPLOAD_HANDLERS = [
            "django.core.files.uploadhandler.MemoryFileUploadHandler",
            "django.core.files.uploadhandler.TemporaryFileUploadHandler",
        ]
    response = client.post("/", {"file": _png()})
    assert response.status_code == 400
    html = response.content.decode()
    assert "limit" in html and "1,000 bytes" in html


def test_loopback_url_is_refused_with_400(client, demo_settings):
    response = client.post("/", {"url": "http://127.0.0.1/"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "127.0.0.1 is a loopback address" in html
    assert 'value="http://127.0.0.1/"' in html  # the form keeps what was typed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Choose an image file"),
        ({"url": "https://example.org/a.png", "file": "FILE"}, "not both"),
        ({"url": "not a url"}, "URL"),
    ],
)
def test_unusable_form_input_is_400(client, demo_settings, data, message):
    if data.get("file") == "FILE":
        data = {**data, "file": _png()}
    response = client.post("/", data)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_missing_weights_is_503_not_500(client, demo_settings, tmp_path):
    demo_settings.HUMANMADE = {"WEIGHTS": str(tmp_path / "absent.safetensors")}
    response = client.post("/", {"file": _png()})
    assert response.status_code == 503
    assert "The detector is not available" in response.content.decode()


def test_json_endpoint_needs_csrf_token(demo_settings):
    client = Client(enforce_csrf_checks=True)
    refused = client.post("/score.json", {"file": _png()})
    assert refused.status_code == 403
    assert refused.json()["error"] == "csrf_failed"

    client.get("/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    ok = client.post("/score.json", {"file": _png()}, headers={"X-CSRFToken": token})
    assert ok.status_code == 200
    body = ok.json()
    assert body["summary"].startswith("AI-generated: ")
    assert body["band"] in ("likely_human", "uncertain", "likely_ai")
    assert body["model_version"] == "test-0"

    bad = client.post(
        "/score.json",
        {"file": SimpleUploadedFile("x.jpg", b"not an image at all", "image/jpeg")},
        headers={"X-CSRFToken": token},
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "not_an_image"
    assert "not an image" in bad.json()["message"]


def test_json_endpoint_is_post_only(client, demo_settings):
    assert client.get("/score.json").status_code == 405


def test_detector_is_shared_and_follows_settings(demo_settings, tmp_path):
    first = get_detector()
    assert get_detector() is first
    demo_settings.HUMANMADE = {**demo_settings.HUMANMADE, "WEIGHTS": str(tmp_path / "w.st")}
    assert get_detector().weights_path == tmp_path / "w.st"


@pytest.mark.django_db
def test_demo_command_migrates_and_creates_admin_idempotently(demo_settings, monkeypatch):
    monkeypatch.setenv("HUMANMADE_DEMO_ADMIN_USER", "demo-admin")
    monkeypatch.setenv("HUMANMADE_DEMO_ADMIN_PASSWORD", "a-long-demo-password")
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    text = out.getvalue()
    assert "Created demo admin 'demo-admin'" in text
    assert "Model loaded: version test-0" in text
    user = get_user_model().objects.get(username="demo-admin")
    assert user.is_superuser and user.is_staff
    assert user.check_password("a-long-demo-password")

    again = io.StringIO()
    call_command("demo", "--no-serve", stdout=again)
    assert "already exists" in again.getvalue()
    assert get_user_model().objects.filter(username="demo-admin").count() == 1


@pytest.mark.django_db
def test_demo_command_without_admin_env_explains(demo_settings, monkeypatch):
    monkeypatch.delenv("HUMANMADE_DEMO_ADMIN_USER", raising=False)
    monkeypatch.delenv("HUMANMADE_DEMO_ADMIN_PASSWORD", raising=False)
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    assert "python manage.py createsuperuser" in out.getvalue()
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_demo_command_second_run_without_env_names_the_existing_admin(demo_settings, monkeypatch):
    get_user_model().objects.create_superuser("first-admin", "", "a-long-password-123")
    monkeypatch.delenv("HUMANMADE_DEMO_ADMIN_USER", raising=False)
    monkeypatch.delenv("HUMANMADE_DEMO_ADMIN_PASSWORD", raising=False)
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    text = out.getvalue()
    assert "Admin account(s) already here: 'first-admin'" in text
    assert "No demo admin created" not in text


def test_empty_submit_is_not_called_an_unscorable_image(client, demo_settings):
    html = client.post("/", {}).content.decode()
    assert "Nothing was scored." in html and "This image could not be scored" not in html
    bad = client.post("/", {"file": SimpleUploadedFile("x.png", b"text", "image/png")})
    assert "This image could not be scored." in bad.content.decode()


@pytest.mark.django_db
def test_demo_command_fails_clearly_without_weights(demo_settings, tmp_path):
    demo_settings.HUMANMADE = {"WEIGHTS": str(tmp_path / "absent.safetensors")}
    with pytest.raises(CommandError, match="Cannot load the model weights"):
        call_command("demo", "--no-serve", stdout=io.StringIO())


def test_page_shows_provenance_evidence(client, demo_settings):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 96x64"
    )
    data = encode(make_image(96, 64), "PNG", pnginfo=info)
    upload = SimpleUploadedFile("cat.png", data, "image/png")
    response = client.post("/", {"file": upload})
    assert response.status_code == 200
    body = response.content.decode()
    assert "What the file says about its origin" in body
    assert "parameters" in body and "likely AI" in body
    # The evidence is listed once, not again among the reasons.
    summary = response.context["verdict"].evidence[0].summary
    assert unescape(body).count(summary) == 1
