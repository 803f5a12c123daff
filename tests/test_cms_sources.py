"""cms_plugin and the objects it watches, whatever the CMS: replaced and deleted files leave no
stale queue entries or heatmaps, the queue names and links each object, the uploader sees
their verdicts, the API filters by object, and a misplaced API route is reported."""

from __future__ import annotations

import io

import pytest
from cms_support import humanmade_conf, make_user, png
from django.core import checks
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from cms_plugin import services, sources
from cms_plugin.models import Detection
from demo_site.models import NewsPhoto


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run `fn` and then its on_commit callbacks (the scoring), as a commit would."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def _photo(title: str, data: bytes) -> NewsPhoto:
    photo = NewsPhoto(title=title)
    photo.image.save(f"{title}.png", ContentFile(data), save=False)
    photo.save()
    return photo


def _replace(photo: NewsPhoto, data: bytes) -> None:
    photo.image.save("replacement.png", ContentFile(data), save=False)
    photo.save()


def _of(photo: NewsPhoto) -> list[Detection]:
    return list(Detection.objects.filter(object_id=str(photo.pk)).order_by("pk"))


@pytest.mark.django_db
def test_a_replaced_file_takes_its_undecided_detection_out_of_the_queue(cms, commit):
    photo = commit(_photo, "harbour", png(1))
    [old] = _of(photo)
    assert old.status == Detection.Status.NEEDS_REVIEW and old.heatmap
    heatmap = old.heatmap.name
    assert default_storage.exists(heatmap)

    commit(_replace, photo, png(2))
    old, new = _of(photo)
    assert old.status == Detection.Status.STALE and f"#{new.pk}" in old.error
    assert not old.heatmap and not default_storage.exists(heatmap)
    assert new.status == Detection.Status.NEEDS_REVIEW and new.heatmap
    assert old.can_be_reviewed is False and old.is_final

    # A person's decision is kept when the file changes again: it trains the next model.
    services.record_review(new, make_user("desk", "review_detection"), "human_made")
    commit(_replace, photo, png(3))
    decided, latest = _of(photo)[1:]
    assert decided.status == Detection.Status.REVIEWED and decided.heatmap
    assert latest.status == Detection.Status.NEEDS_REVIEW


@pytest.mark.django_db
def test_deleting_the_object_drops_its_heatmaps_but_not_one_another_image_shares(cms, commit):
    data = png(4)
    first = commit(_photo, "first", data)
    second = commit(_photo, "second", data)  # the same bytes: scored once, heatmap shared
    [a], [b] = _of(first), _of(second)
    assert b.evidence["deduplicated_from"] == a.pk and a.heatmap.name == b.heatmap.name

    first.delete()
    a.refresh_from_db()
    assert a.status == Detection.Status.STALE and a.error == "The image was deleted."
    assert default_storage.exists(b.heatmap.name)  # still shown for the second photo

    second.delete()
    b.refresh_from_db()
    assert b.status == Detection.Status.STALE and not b.heatmap
    assert not default_storage.exists(a.heatmap.name)
    assert not Detection.objects.filter(status=Detection.Status.NEEDS_REVIEW).exists()


@pytest.mark.django_db
def test_a_new_file_with_stale_bytes_is_scored_afresh_with_its_own_heatmap(cms, commit):
    photo = commit(_photo, "moved", png(5))
    commit(_replace, photo, png(6))
    commit(_replace, photo, png(5))  # back to the first bytes, whose heatmap is gone
    first, _, again = _of(photo)
    assert first.status == Detection.Status.STALE
    assert "deduplicated_from" not in again.evidence
    assert again.heatmap and default_storage.exists(again.heatmap.name)


@pytest.mark.django_db
def test_rescoring_leaves_stale_detections_alone(cms, commit, new_weights, settings):
    photo = commit(_photo, "old", png(7))
    commit(_replace, photo, png(8))
    stale, current = _of(photo)
    settings.HUMANMADE = humanmade_conf(new_weights)
    call_command("humanmade_rescore", stdout=io.StringIO(), stderr=io.StringIO())
    stale.refresh_from_db()
    current.refresh_from_db()
    assert stale.status == Detection.Status.STALE and stale.model_version == "test-0"
    assert current.model_version == "test-1"


@pytest.mark.django_db
def test_the_queue_names_and_links_the_object_and_the_api_filters_by_it(cms, commit):
    photo = commit(_photo, "Night ferry", png(9))
    commit(_photo, "Other", png(10))
    [detection] = _of(photo)
    reviewer = make_user("desk", "review_detection", "view_detection", staff=True)
    client = Client()
    client.force_login(reviewer)

    queue = client.get(reverse("admin:cms_plugin_detection_changelist")).content.decode()
    edit_url = reverse("admin:demo_site_newsphoto_change", args=[photo.pk])
    label = f"“Night ferry” (demo_site.newsphoto#{photo.pk})"  # long: cut, whole on hover
    assert f'<a href="{edit_url}"><span title="{label}">{label[:27]}…</span></a>' in queue

    answer = client.get(f"/api/detections/?object=demo_site.newsphoto:{photo.pk}")
    [row] = answer.json()["results"]
    assert row["id"] == detection.pk and row["source_title"] == "Night ferry"
    assert row["source_admin_url"] == f"http://testserver{edit_url}"

    bad = client.get("/api/detections/?object=no.such:1")
    assert bad.status_code == 400 and "app_label.model:id" in str(bad.json())


@pytest.mark.django_db
def test_the_uploader_a_source_names_sees_their_verdict(cms, commit, monkeypatch):
    uploader = make_user("photographer")
    monkeypatch.setattr(sources, "_registered", [])
    sources.register(
        sources.Source(applies_to=lambda model: model is NewsPhoto, uploader=lambda p: uploader)
    )
    photo = commit(_photo, "mine", png(11))
    [detection] = _of(photo)
    assert detection.submitted_by == uploader
    client = Client()
    client.force_login(uploader)
    assert client.get(f"/api/detections/{detection.pk}/").status_code == 200
    client.force_login(make_user("someone-else"))
    assert client.get(f"/api/detections/{detection.pk}/").status_code == 404


@pytest.mark.django_db
def test_a_broken_source_never_breaks_the_queue(cms, commit, monkeypatch):
    def broken(obj):
        raise RuntimeError("title lookup failed")

    monkeypatch.setattr(sources, "_registered", [])
    sources.register(sources.Source(applies_to=lambda model: True, title=broken))
    photo = commit(_photo, "fine", png(12))
    client = Client()
    client.force_login(make_user("desk", "review_detection", "view_detection", staff=True))
    page = client.get(reverse("admin:cms_plugin_detection_changelist"))
    assert page.status_code == 200
    assert f"demo_site.newsphoto#{photo.pk}" in page.content.decode()


def test_the_api_route_after_a_catch_all_is_reported(settings):
    settings.ROOT_URLCONF = "cms_sites.catch_all_urls"
    [error] = [m for m in checks.run_checks(tags=[checks.Tags.urls]) if m.id == "cms_plugin.E011"]
    assert "/api/detections/" in error.msg and "catch_all" in error.msg
    settings.ROOT_URLCONF = "demo_site.urls"
    assert "cms_plugin.E011" not in {m.id for m in checks.run_checks(tags=[checks.Tags.urls])}
