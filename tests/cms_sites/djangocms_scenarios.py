"""humanmade in a django CMS 5 site with django-filer 3, as its editors use it: images
uploaded through filer's folder admin (public and private) are scored; the verdict shows on
the filer image's admin page; the review queue lists them, filters by source and links back.

Runs in a pytest of its own on djangocms_site.settings (tests/test_cms_djangocms.py starts it).
"""

from __future__ import annotations

import pytest
from conftest import encode, make_image
from django.urls import reverse

BORDERLINE = {"human": 0.0, "ai": 1.0}  # every score lands in "uncertain": needs review
FILER_PERMS = ("add_file", "change_file", "view_file", "delete_file", "change_image")
FILER_PERMS += ("add_image", "view_image", "delete_image", "add_folder", "view_folder")


def png(seed: int = 0, width: int = 96, height: int = 64) -> bytes:
    return encode(make_image(width, height, seed=seed))


@pytest.fixture(autouse=True)
def humanmade(settings, tiny_weights, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.HUMANMADE = {**settings.HUMANMADE, "WEIGHTS": str(tiny_weights), "CUTOFFS": BORDERLINE}
    return settings


def _user(username: str, *, reviewer: bool = False):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(username, password="pw-" + username * 2)
    user.is_staff = True
    user.save()
    codenames = [*FILER_PERMS, *(("review_detection", "view_detection") if reviewer else ())]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def editor(client):
    user = _user("editor")
    client.force_login(user)
    return user


def _upload(client, capture, data: bytes, name: str = "press-photo.png"):
    """An upload as filer's folder admin sends it (its uploader posts one file per request)."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from filer.models import Image

    with capture(execute=True):
        response = client.post(
            reverse("admin:filer-ajax_upload"),
            {"qqfile": SimpleUploadedFile(name, data, content_type="image/png")},
        )
    assert response.status_code == 200, response.content[:2000]
    return Image.objects.get(pk=response.json()["file_id"])


def _detections(image):
    from cms_plugin.contrib.verdicts import detections_of

    return list(detections_of(image))


@pytest.mark.django_db
def test_a_filer_upload_is_scored_and_shown_on_the_filer_image_page(
    client, editor, django_capture_on_commit_callbacks
):
    from django.contrib.contenttypes.models import ContentType

    from cms_plugin.models import Detection

    image = _upload(client, django_capture_on_commit_callbacks, png(1, 160, 120))
    assert image.is_public
    [detection] = _detections(image)
    assert detection.status == Detection.Status.NEEDS_REVIEW
    assert detection.submitted_by == editor  # filer's owner
    page = client.get(reverse("admin:filer_image_change", args=[image.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "AI-generation check (humanmade)" in body and detection.summary in body
    assert reverse("admin:cms_plugin_detection_change", args=[detection.pk]) in body

    # Filer's thumbnails (easy-thumbnails) of the image are not scored as uploads.
    with django_capture_on_commit_callbacks(execute=True):
        icons, thumbnails = image.icons, image.thumbnails
    assert icons and thumbnails
    from easy_thumbnails.models import Thumbnail

    assert Thumbnail.objects.exists()
    assert Detection.objects.count() == 1

    # The uploader sees their verdict through the API, found by the filer object.
    api = client.get(f"/api/detections/?object=filer.image:{image.pk}").json()
    [row] = api["results"]
    assert row["id"] == detection.pk and row["source_title"] == "press-photo.png"
    assert row["source_admin_url"].endswith(reverse("admin:filer_image_change", args=[image.pk]))

    # The review queue: filtered to filer images, linking back to the filer image.
    client.force_login(_user("desk", reviewer=True))
    content_type = ContentType.objects.get_for_model(image)
    queue = client.get(
        reverse("admin:cms_plugin_detection_changelist")
        + f"?content_type__id__exact={content_type.pk}"
    )
    assert queue.status_code == 200
    body = queue.content.decode()
    assert reverse("admin:filer_image_change", args=[image.pk]) in body
    assert "press-photo.png" in body
    done = client.post(
        reverse("admin:cms_plugin_detection_review", args=[detection.pk]),
        {"decision": "human_made", "note": "agency photo"},
    )
    assert done.status_code == 302
    detection.refresh_from_db()
    assert (
        detection.decision == Detection.Decision.HUMAN_MADE
        and detection.reviewer.username == "desk"
    )
    body = client.get(reverse("admin:filer_image_change", args=[image.pk])).content.decode()
    assert "confirmed human-made" in body


@pytest.mark.django_db
def test_private_filer_images_are_scored_and_making_one_private_keeps_the_queue_clean(
    client, editor, django_capture_on_commit_callbacks, monkeypatch
):
    from django.core.files.storage import default_storage
    from filer import settings as filer_settings

    from cms_plugin.models import Detection

    # FILER_IS_PUBLIC_DEFAULT = False, as filer reads it (once, into its settings module).
    monkeypatch.setattr(filer_settings, "FILER_IS_PUBLIC_DEFAULT", False)
    embargoed = _upload(client, django_capture_on_commit_callbacks, png(2, 128, 96))
    monkeypatch.undo()
    assert not embargoed.is_public
    [detection] = _detections(embargoed)
    assert detection.status == Detection.Status.NEEDS_REVIEW, detection.error
    client.force_login(_user("desk", reviewer=True))
    thumb = client.get(reverse("admin:cms_plugin_detection_thumbnail", args=[detection.pk]))
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"

    # A public image made private: filer moves its file to the private storage.
    public = _upload(client, django_capture_on_commit_callbacks, png(3, 128, 96))
    [before] = _detections(public)
    assert before.heatmap and default_storage.exists(before.heatmap.name)
    with django_capture_on_commit_callbacks(execute=True):
        public.is_public = False
        public.save()
    after, old = _detections(public)
    old.refresh_from_db()
    assert old.pk == before.pk and old.status == Detection.Status.STALE
    assert after.status == Detection.Status.NEEDS_REVIEW, after.error
    assert after.probability == pytest.approx(before.probability)  # the same bytes
    assert (
        client.get(reverse("admin:cms_plugin_detection_thumbnail", args=[after.pk])).status_code
        == 200
    )
    waiting = Detection.objects.filter(status=Detection.Status.NEEDS_REVIEW)
    assert set(waiting.values_list("pk", flat=True)) == {detection.pk, after.pk}

    # Deleted in filer: out of the queue, its heatmap out of storage.
    heatmap = after.heatmap.name
    client.force_login(editor)
    with django_capture_on_commit_callbacks(execute=True):
        public.delete()
    after.refresh_from_db()
    assert after.status == Detection.Status.STALE and not after.heatmap
    assert not default_storage.exists(heatmap)


@pytest.mark.django_db
def test_a_corrupt_image_gives_a_clear_message_and_the_filer_page_still_renders(
    client, editor, django_capture_on_commit_callbacks
):
    from cms_plugin.models import Detection

    data = png(4, 128, 96)
    image = _upload(client, django_capture_on_commit_callbacks, data[: len(data) // 2], "cut.png")
    [detection] = _detections(image)
    assert detection.status == Detection.Status.FAILED
    assert detection.error and "Traceback" not in detection.error
    page = client.get(reverse("admin:filer_image_change", args=[image.pk]))
    assert page.status_code == 200
    assert "This image could not be checked" in page.content.decode()


@pytest.mark.django_db
def test_system_checks_pass_here_and_catch_the_api_after_the_catch_all(settings):
    from django.core import checks

    ids = {m.id for m in checks.run_checks()}
    assert not {i for i in ids if i and i.startswith(("cms_plugin", "humanmade"))}
    settings.ROOT_URLCONF = "djangocms_site.urls_api_last"
    [error] = [m for m in checks.run_checks(tags=[checks.Tags.urls]) if m.id == "cms_plugin.E011"]
    assert "/api/detections/" in error.msg and "cms.urls" in error.hint


@pytest.mark.django_db(transaction=True)
def test_in_chromium_the_filer_image_page_shows_the_verdict(live_server):
    """A screenshot of filer's image page goes to test-artifacts/djangocms_filer_image.png."""
    from contextlib import contextmanager
    from pathlib import Path

    from browser_support import chromium_driver, page_text_after
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from filer.models import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    chief = get_user_model().objects.create_superuser("chief", "", "a-long-browser-password")
    image = Image(owner=chief, original_filename="ferry.png")
    image.file.save("ferry.png", ContentFile(png(12, 320, 240)), save=False)
    image.save()  # committed: scored at once, in-process
    [detection] = _detections(image)
    assert detection.summary

    with contextmanager(chromium_driver)() as browser:
        browser.get(f"{live_server.url}/admin/login/")
        browser.find_element(By.NAME, "username").send_keys("chief")
        browser.find_element(By.NAME, "password").send_keys("a-long-browser-password")
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        WebDriverWait(browser, 30).until(lambda b: "/login/" not in b.current_url)
        browser.get(f"{live_server.url}{reverse('admin:filer_image_change', args=[image.pk])}")
        assert detection.summary in page_text_after(browser, "AI-generation check")
        panel = browser.find_element(By.ID, "humanmade-verdict")
        browser.execute_script("arguments[0].scrollIntoView();", panel)
        browser.save_screenshot(str(artifacts / "djangocms_filer_image.png"))
    assert (artifacts / "djangocms_filer_image.png").stat().st_size > 5000
