"""humanmade in a Wagtail 8 site, as its editors use it: images uploaded through Wagtail's own
admin views are scored, and the verdict shows in Wagtail's image listing, chooser and edit
page; reviewers decide from Wagtail's "Needs review" menu.

Runs in a pytest of its own on wagtail_site.settings (tests/test_cms_wagtail.py starts it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import encode, make_image
from django.urls import reverse

BORDERLINE = {"human": 0.0, "ai": 1.0}  # every score lands in "uncertain": needs review
ALL_AI = {"human": 0.0, "ai": 1e-9}  # every score is "likely AI"
CUSTOM_MODEL = os.environ.get("HUMANMADE_TEST_IMAGE_MODEL", "wagtailimages.Image")
only_default_image_model = pytest.mark.skipif(
    CUSTOM_MODEL != "wagtailimages.Image", reason="the page model links wagtailimages.Image"
)


def png(seed: int = 0, width: int = 96, height: int = 64) -> bytes:
    return encode(make_image(width, height, seed=seed))


@pytest.fixture(autouse=True)
def humanmade(settings, tiny_weights, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.HUMANMADE = {**settings.HUMANMADE, "WEIGHTS": str(tiny_weights), "CUTOFFS": BORDERLINE}
    return settings


def _user(username: str, *, reviewer: bool = False):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    user = get_user_model().objects.create_user(username, password="pw-" + username * 2)
    user.groups.add(Group.objects.get(name="Editors"))
    if reviewer:
        user.user_permissions.add(Permission.objects.get(codename="review_detection"))
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def editor(client):
    user = _user("editor")
    client.force_login(user)
    return user


def _image_model():
    from wagtail.images import get_image_model

    return get_image_model()


def _upload(client, data: bytes, title: str = "Harbour at dawn", name: str = "harbour.png"):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from wagtail.models import Collection

    return client.post(
        reverse("wagtailimages:add"),
        {
            "title": title,
            "file": SimpleUploadedFile(name, data, content_type="image/png"),
            "collection": Collection.get_first_root_node().pk,
            "tags": "",
        },
    )


def _detections(image):
    from cms_plugin.contrib.verdicts import detections_of

    return list(detections_of(image))


def _uploaded(client, django_capture_on_commit_callbacks, data: bytes, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(client, data, **kwargs)
    assert response.status_code == 302, response.content[:3000]
    return _image_model().objects.order_by("-pk").first()


@pytest.mark.django_db
def test_an_upload_through_wagtail_is_scored_and_shown_where_editors_work(
    client, editor, django_capture_on_commit_callbacks
):
    from cms_plugin.models import Detection

    image = _uploaded(client, django_capture_on_commit_callbacks, png(1, 160, 120))
    [detection] = _detections(image)
    assert detection.status == Detection.Status.NEEDS_REVIEW
    assert detection.band == Detection.Band.UNCERTAIN
    assert 0.0 <= detection.probability <= 1.0
    assert detection.submitted_by == editor  # Wagtail's uploaded_by_user
    percent = f"{round(detection.probability * 100)}%"

    listing = client.get(reverse("wagtailimages:index")).content.decode()
    assert "humanmade-badge" in listing and f"uncertain {percent}" in listing
    listing_as_list = client.get(reverse("wagtailimages:index") + "?layout=list").content.decode()
    assert f"uncertain {percent}" in listing_as_list
    chooser = client.get(reverse("wagtailimages_chooser:choose")).content.decode()
    assert f"uncertain {percent}" in chooser

    edit = client.get(reverse("wagtailimages:edit", args=[image.pk]))
    assert edit.status_code == 200
    page = edit.content.decode()
    assert 'id="humanmade-verdict"' in page
    assert detection.summary in page and "Advisory" in page
    assert "Confirm human-made" not in page  # the editor may not decide
    heatmap_url = reverse("humanmade_wagtail:heatmap", args=[detection.pk])
    assert heatmap_url in page
    heatmap = client.get(heatmap_url)
    assert heatmap.status_code == 200 and heatmap["Content-Type"] == "image/png"

    # The uploader sees their own verdict through the API, found by the Wagtail object.
    api = client.get(f"/api/detections/?object={CUSTOM_MODEL.lower()}:{image.pk}")
    assert api.status_code == 200, api.content
    [row] = api.json()["results"]
    assert row["id"] == detection.pk and row["source_title"] == "Harbour at dawn"
    assert row["source_admin_url"].endswith(reverse("wagtailimages:edit", args=[image.pk]))


@pytest.mark.django_db
def test_multiple_upload_is_scored(client, editor, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from cms_plugin.models import Detection

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("wagtailimages:add_multiple"),
            {"files[]": SimpleUploadedFile("one.png", png(2), content_type="image/png")},
        )
    assert response.status_code == 200 and response.json()["success"], response.content[:2000]
    image = _image_model().objects.get(pk=response.json()["image_id"])
    [detection] = _detections(image)
    assert detection.status == Detection.Status.NEEDS_REVIEW
    assert detection.submitted_by == editor


@pytest.mark.django_db
def test_renditions_are_not_scored(client, editor, django_capture_on_commit_callbacks):
    from cms_plugin.models import Detection

    image = _uploaded(client, django_capture_on_commit_callbacks, png(3))
    with django_capture_on_commit_callbacks(execute=True):
        image.get_rendition("fill-40x40")
        image.get_rendition("width-30")
    assert image.renditions.count() == 2
    assert Detection.objects.count() == 1


@pytest.mark.django_db
def test_a_reviewer_decides_from_wagtails_needs_review_menu(
    client, django_capture_on_commit_callbacks
):
    from cms_plugin.models import Detection, Review

    uploader = _user("uploader")
    client.force_login(uploader)
    image = _uploaded(client, django_capture_on_commit_callbacks, png(4), title="Contest entry")
    [detection] = _detections(image)

    # Not a reviewer: no menu item, and the queue is refused inside Wagtail (not sent to the
    # Django admin's login page).
    assert "Needs review" not in client.get(reverse("wagtailadmin_home")).content.decode()
    refused = client.get(reverse("humanmade_wagtail:queue"))
    assert refused.status_code in (302, 403)
    assert "django-admin" not in refused.get("Location", "")

    reviewer = _user("desk", reviewer=True)
    client.force_login(reviewer)
    assert "Needs review" in client.get(reverse("wagtailadmin_home")).content.decode()
    queue = client.get(reverse("humanmade_wagtail:queue"))
    assert queue.status_code == 200
    body = queue.content.decode()
    assert "Contest entry" in body and "Confirm human-made" in body
    assert reverse("wagtailimages:edit", args=[image.pk]) in body
    thumb = client.get(reverse("humanmade_wagtail:thumbnail", args=[detection.pk]))
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"

    done = client.post(
        reverse("humanmade_wagtail:review", args=[detection.pk]),
        {"decision": "human_made", "note": "raw file seen", "next": "https://evil.example/"},
        follow=True,
    )
    assert done.redirect_chain[0][0] == reverse("humanmade_wagtail:queue")  # not off-site
    assert "Contest entry” confirmed human-made" in done.content.decode()
    detection.refresh_from_db()
    assert detection.status == Detection.Status.REVIEWED
    assert detection.decision == Detection.Decision.HUMAN_MADE
    assert detection.reviewer == reviewer and detection.reviewed_at is not None
    assert Review.objects.get(detection=detection).note == "raw file seen"
    assert "No image is waiting" in client.get(reverse("humanmade_wagtail:queue")).content.decode()
    edit = client.get(reverse("wagtailimages:edit", args=[image.pk])).content.decode()
    assert "confirmed human-made" in edit and "desk" in edit

    # The uploader may not decide.
    client.force_login(uploader)
    assert client.post(
        reverse("humanmade_wagtail:review", args=[detection.pk]), {"decision": "ai_generated"}
    ).status_code in (302, 403)
    detection.refresh_from_db()
    assert detection.decision == Detection.Decision.HUMAN_MADE


@pytest.mark.django_db
def test_replacing_and_deleting_an_image_leave_no_stale_queue_entries(
    client, editor, django_capture_on_commit_callbacks, settings
):
    from django.core.files.storage import default_storage
    from django.core.files.uploadedfile import SimpleUploadedFile

    from cms_plugin.models import Detection

    image = _uploaded(client, django_capture_on_commit_callbacks, png(5, 128, 96))
    [first] = _detections(image)
    assert first.heatmap and default_storage.exists(first.heatmap.name)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("wagtailimages:edit", args=[image.pk]),
            {
                "title": image.title,
                "file": SimpleUploadedFile("other.png", png(6, 128, 96), content_type="image/png"),
                "collection": image.collection_id,
                "tags": "",
            },
        )
    assert response.status_code == 302, response.content[:3000]
    second, old = _detections(image)
    old.refresh_from_db()
    assert old.pk == first.pk and old.status == Detection.Status.STALE
    assert f"#{second.pk}" in old.error
    assert not old.heatmap and not default_storage.exists(first.heatmap.name)
    assert second.status == Detection.Status.NEEDS_REVIEW
    queue_ids = set(
        Detection.objects.filter(status=Detection.Status.NEEDS_REVIEW).values_list("pk", flat=True)
    )
    assert queue_ids == {second.pk}

    response = client.post(reverse("wagtailimages:delete", args=[image.pk]))
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.status == Detection.Status.STALE and second.error == "The image was deleted."
    assert not Detection.objects.filter(status=Detection.Status.NEEDS_REVIEW).exists()
    assert not any(
        default_storage.exists(n)
        for n in Detection.objects.exclude(heatmap="").values_list("heatmap", flat=True)
    )
    assert not list(default_storage.listdir("humanmade/heatmaps")[1])


@pytest.mark.django_db
def test_bad_images_give_the_editor_a_clear_message(
    client, editor, django_capture_on_commit_callbacks, settings
):
    from cms_plugin.models import Detection

    # Not an image at all: Wagtail's own form refuses it, nothing is queued.
    response = _upload(client, b"this is not an image", name="notes.png")
    assert response.status_code == 200
    [message] = response.context["form"].errors["file"]
    assert message in response.content.decode() and Detection.objects.count() == 0

    # Larger than humanmade accepts (but not Wagtail): the check fails with a reason shown on
    # the edit page, and every Wagtail page still renders.
    settings.HUMANMADE = {**settings.HUMANMADE, "MAX_UPLOAD_BYTES": 4000}
    big = _uploaded(client, django_capture_on_commit_callbacks, png(7, 200, 200), title="Big")
    [detection] = _detections(big)
    assert detection.status == Detection.Status.FAILED
    assert "limit" in detection.error
    edit = client.get(reverse("wagtailimages:edit", args=[big.pk]))
    assert edit.status_code == 200
    assert "This image could not be checked" in edit.content.decode()
    listing = client.get(reverse("wagtailimages:index"))
    assert listing.status_code == 200 and "could not be checked" in listing.content.decode()


@pytest.mark.django_db
def test_a_cut_off_file_and_a_decompression_bomb_fail_clearly_in_wagtail(
    client, editor, django_capture_on_commit_callbacks
):
    from PIL import Image

    from cms_plugin.models import Detection

    whole = encode(make_image(200, 150, seed=10), "JPEG", quality=90)
    huge = encode(Image.new("L", (9000, 8000)), "PNG")  # 72 Mpx in a few kB: Wagtail takes it
    for title, data, name in (
        ("Cut", whole[: len(whole) // 2], "cut.jpg"),
        ("Huge", huge, "huge.png"),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = _upload(client, data, title=title, name=name)
        if response.status_code == 200:  # Wagtail's own form refused it, with its message
            assert response.context["form"].errors["file"]
            continue
        assert response.status_code == 302
        image = _image_model().objects.get(title=title)
        [detection] = _detections(image)
        assert detection.status == Detection.Status.FAILED, (title, detection.status)
        assert detection.error and "Traceback" not in detection.error
        if title == "Huge":
            assert "pixels" in detection.error or "px" in detection.error, detection.error
        badge = client.get(reverse("wagtailimages:index") + "?layout=list")
        assert badge.status_code == 200 and "could not be checked" in badge.content.decode()
        edit = client.get(reverse("wagtailimages:edit", args=[image.pk]))
        assert edit.status_code == 200
        assert detection.error in edit.content.decode().replace("&#x27;", "'")
    assert Detection.objects.filter(status=Detection.Status.FAILED).exists()


@only_default_image_model
@pytest.mark.django_db
def test_publish_warning_is_off_by_default_then_advises_and_can_be_overridden(
    client, editor, django_capture_on_commit_callbacks, settings
):
    from wagtail.models import Page
    from wagtail_site.newsroom.models import ArticlePage

    settings.HUMANMADE = {**settings.HUMANMADE, "CUTOFFS": ALL_AI}
    image = _uploaded(client, django_capture_on_commit_callbacks, png(8), title="Generated?")
    home = Page.objects.get(depth=2)
    editor.is_superuser = True  # may publish
    editor.save()
    client.force_login(editor)

    def make_page(slug: str) -> ArticlePage:
        page = ArticlePage(title=slug, slug=slug, hero_image=image, live=False)
        home.add_child(instance=page)
        page.save_revision()
        return page

    def publish(page: ArticlePage):
        return client.post(
            reverse("wagtailadmin_pages:edit", args=[page.pk]),
            {"title": page.title, "slug": page.slug, "hero_image": image.pk, "action-publish": "1"},
        )

    quiet = make_page("off-by-default")
    assert publish(quiet).status_code == 302
    assert ArticlePage.objects.get(pk=quiet.pk).live

    settings.HUMANMADE = {**settings.HUMANMADE, "WAGTAIL_PUBLISH_WARNING": True}
    warned = make_page("warned")
    response = publish(warned)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Publish with a likely-AI image?" in body and "Generated?" in body
    assert not ArticlePage.objects.get(pk=warned.pk).live  # not yet: the editor decides
    publish_url = reverse(
        "humanmade_wagtail_publish",
        args=[warned.pk, ArticlePage.objects.get(pk=warned.pk).get_latest_revision().pk],
    )
    assert publish_url in body
    assert client.post(publish_url).status_code == 302
    assert ArticlePage.objects.get(pk=warned.pk).live

    # Once a person confirmed the image, no warning.
    from cms_plugin import services

    [detection] = _detections(image)
    services.record_review(detection, editor, "human_made")
    confirmed = make_page("confirmed")
    assert publish(confirmed).status_code == 302
    assert ArticlePage.objects.get(pk=confirmed.pk).live


@pytest.mark.django_db
def test_system_checks_pass_here_and_catch_the_api_after_the_catch_all(settings, monkeypatch):
    from django.core import checks

    ids = {m.id for m in checks.run_checks()}
    assert not {i for i in ids if i and i.startswith(("cms_plugin", "humanmade_wagtail"))}
    settings.ROOT_URLCONF = "wagtail_site.urls_api_last"
    [error] = [m for m in checks.run_checks(tags=[checks.Tags.urls]) if m.id == "cms_plugin.E011"]
    assert "/api/detections/" in error.msg and "wagtail_serve" in error.msg
    from types import SimpleNamespace

    from cms_plugin.contrib.wagtail import checks as wagtail_checks

    apps_out_of_order = [a for a in settings.INSTALLED_APPS if a != wagtail_checks.APP]
    apps_out_of_order.append(wagtail_checks.APP)
    monkeypatch.setattr(
        wagtail_checks, "settings", SimpleNamespace(INSTALLED_APPS=apps_out_of_order)
    )
    found = {m.id for m in wagtail_checks.check_wagtail_setup()}
    assert {"humanmade_wagtail.E001", "humanmade_wagtail.W002"} <= found  # no safe form set


@only_default_image_model
@pytest.mark.django_db(transaction=True)
def test_in_chromium_an_editor_uploads_and_a_reviewer_decides(live_server, tmp_path):
    """Screenshots of the Wagtail pages go to test-artifacts/wagtail_*.png."""
    from contextlib import contextmanager

    from browser_support import chromium_driver, page_text_after
    from django.contrib.auth import get_user_model
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from cms_plugin.models import Detection

    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    photo = tmp_path / "lighthouse.png"
    photo.write_bytes(png(9, 320, 240))
    get_user_model().objects.create_superuser("chief", "", "a-long-browser-password")

    with contextmanager(chromium_driver)() as browser:
        browser.get(f"{live_server.url}/admin/login/")
        browser.find_element(By.NAME, "username").send_keys("chief")
        browser.find_element(By.NAME, "password").send_keys("a-long-browser-password")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 30).until(lambda b: "/login/" not in b.current_url)

        browser.get(f"{live_server.url}{reverse('wagtailimages:add')}")
        browser.find_element(By.ID, "id_file").send_keys(str(photo))
        title = browser.find_element(By.ID, "id_title")
        # Wagtail fills the title in from the file name; replace it once it has.
        WebDriverWait(browser, 30).until(lambda b: title.get_attribute("value"))
        title.clear()
        title.send_keys("Lighthouse at dusk")
        browser.save_screenshot(str(artifacts / "wagtail_image_add.png"))
        browser.find_element(By.XPATH, "//button[normalize-space()='Upload']").click()
        WebDriverWait(browser, 30).until(lambda b: "/add/" not in b.current_url)
        image = _image_model().objects.get(title="Lighthouse at dusk")
        [detection] = _detections(image)
        assert detection.status == Detection.Status.NEEDS_REVIEW  # scored after commit

        browser.get(f"{live_server.url}{reverse('wagtailimages:index')}")
        assert "needs review" in page_text_after(browser, "Lighthouse at dusk")
        browser.save_screenshot(str(artifacts / "wagtail_image_listing.png"))

        browser.get(f"{live_server.url}{reverse('wagtailimages:edit', args=[image.pk])}")
        body = page_text_after(browser, "AI-generation check")
        assert detection.summary in body
        browser.save_screenshot(str(artifacts / "wagtail_image_edit.png"))

        browser.get(f"{live_server.url}{reverse('humanmade_wagtail:queue')}")
        page_text_after(browser, "Lighthouse at dusk")
        browser.save_screenshot(str(artifacts / "wagtail_needs_review.png"))
        browser.find_element(By.CSS_SELECTOR, "button[value=human_made]").click()
        page_text_after(browser, "confirmed human-made")
        browser.save_screenshot(str(artifacts / "wagtail_decided.png"))

    detection.refresh_from_db()
    assert detection.decision == Detection.Decision.HUMAN_MADE
    assert detection.reviewer.username == "chief"
    for name in ("image_listing", "image_edit", "needs_review", "decided"):
        assert (artifacts / f"wagtail_{name}.png").stat().st_size > 5000
