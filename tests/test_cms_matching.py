"""A reviewer's decision follows the picture: the same bytes or a near-duplicate sent again
shows the decision first on the desk, its report and export, the admin, the API and the
CMS badge; never across users who may not see each other's detections."""

from __future__ import annotations

import csv
import io
import json
import random

import numpy as np
import pytest
from cms_support import logged_in, make_user
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageDraw
from rest_framework.test import APIClient

from cms_plugin import matching, services
from cms_plugin.models import Batch, Detection
from detector_core import near_duplicate


def picture(seed: int, size: int = 320) -> Image.Image:
    """A photo-like picture: a smooth gradient with a few soft shapes (not noise, whose
    perceptual hash no resize keeps)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack(
        [
            120 + 100 * np.sin(x * rng.uniform(2, 6) + rng.uniform(0, 3)),
            120 + 100 * np.cos(y * rng.uniform(2, 6) + rng.uniform(0, 3)),
            120 + 90 * np.sin((x + y) * rng.uniform(1, 4)),
        ],
        axis=-1,
    )
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        cx, cy, r = (int(v) for v in rng.integers(30, size - 30, 3) % (size // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((cx, cy, cx + r, cy + r), fill=colour)
    return image


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def resized_jpeg(image: Image.Image) -> bytes:
    small = image.resize((image.width // 2, image.height // 2), Image.LANCZOS)
    return encoded(small, "JPEG", quality=70)


def framed(image: Image.Image) -> bytes:
    canvas = Image.new("RGB", (image.width + 40, image.height + 40), (240, 240, 240))
    canvas.paste(image, (20, 20))
    return encoded(canvas)


# --- the hash and its indexed parts -----------------------------------------------------


def test_four_parts_find_every_hash_within_three_bits():
    rng = random.Random(7)
    for _ in range(500):
        value = rng.getrandbits(64)
        flipped = value
        for bit in rng.sample(range(64), rng.randint(0, 3)):
            flipped ^= 1 << bit
        assert near_duplicate.distance(value, flipped) <= 3
        shared = [
            a == b
            for a, b in zip(
                near_duplicate.chunks(value), near_duplicate.chunks(flipped), strict=True
            )
        ]
        assert any(shared)
    value = rng.getrandbits(64)
    assert near_duplicate.from_signed(near_duplicate.to_signed(value)) == value
    assert all(0 <= part < 1 << 16 for part in near_duplicate.chunks(value))


def test_copies_a_newsroom_sees_hash_close_and_other_pictures_far():
    original = picture(1)
    h = near_duplicate.hash_bytes(encoded(original))
    for copy in (resized_jpeg(original), framed(original), encoded(original, "WEBP", quality=80)):
        assert near_duplicate.distance(h, near_duplicate.hash_bytes(copy)) <= 3
    for seed in range(2, 8):
        other = near_duplicate.hash_bytes(encoded(picture(seed)))
        assert near_duplicate.distance(h, other) > 3


def test_a_frame_is_trimmed_but_a_plain_edge_on_one_side_is_not():
    image = picture(3, 200)
    assert near_duplicate.trim_border(Image.open(io.BytesIO(framed(image)))).size == (200, 200)
    strip = Image.new("RGB", (200, 240), (255, 255, 255))
    strip.paste(image, (0, 40))  # white sky above, nothing on the other sides
    assert near_duplicate.trim_border(strip).size == (200, 240)


# --- the CMS ----------------------------------------------------------------------------


def _desk_send(user, name: str, data: bytes) -> Batch:
    response = logged_in(user).post(
        "/desk/", {"files": [SimpleUploadedFile(name, data, "image/png")], "urls": ""}
    )
    assert response.status_code == 302, response.content[:500]
    return Batch.objects.get(pk=int(response.url.rstrip("/").split("/")[-1]))


def _decide(detection: Detection, decision: str = "human_made") -> Detection:
    reviewer = make_user(f"rev{detection.pk}", "review_detection")
    return services.record_review(Detection.objects.get(pk=detection.pk), reviewer, decision)


@pytest.mark.django_db(transaction=True)
def test_scoring_stores_the_hash_in_four_indexed_parts(fresh_cms):
    alice = make_user("alice", "view_detection")
    detection = _desk_send(alice, "a.png", encoded(picture(1))).detections.get()
    detection.refresh_from_db()
    assert detection.phash is not None
    value = near_duplicate.from_signed(detection.phash)
    assert value == near_duplicate.hash_bytes(encoded(picture(1)))
    parts = [detection.phash_0, detection.phash_1, detection.phash_2, detection.phash_3]
    assert [p + (1 << 15) for p in parts] == list(near_duplicate.chunks(value))
    indexed = {
        index.fields[0]: index.condition for index in Detection._meta.indexes if index.condition
    }
    assert set(matching.PART_FIELDS) <= set(indexed)  # each part indexed, for decided rows


@pytest.mark.django_db(transaction=True)
def test_a_decided_picture_sent_again_resized_shows_the_decision_first_on_the_desk(fresh_cms):
    alice = make_user("alice", "view_detection")
    bob = make_user("bob", "view_detection")
    first = _desk_send(alice, "agency.png", encoded(picture(1))).detections.get()
    _decide(first, "human_made")

    batch = _desk_send(bob, "forwarded.jpg", resized_jpeg(picture(1)))
    copy = batch.detections.get()
    found = matching.decision_for(Detection.objects.get(pk=copy.pk))
    assert found is not None
    assert (found.decision, found.match, found.detection_id) == (
        "human_made",
        matching.Match.NEAR_DUPLICATE,
        first.pk,
    )
    assert found.distance <= 3

    page = logged_in(bob).get(f"/desk/batches/{batch.pk}/").content.decode()
    assert "Confirmed human-made by a reviewer" in page
    assert page.index("Confirmed human-made by a reviewer") < page.index("Model: ")
    assert "agency.png" not in page  # the other upload is not named

    report = logged_in(bob).get(f"/desk/detections/{copy.pk}/").content.decode()
    assert report.index("Confirmed human-made by a reviewer") < report.index(
        '<section class="hm-verdict"'
    )

    rows = list(
        csv.DictReader(
            io.StringIO(logged_in(bob).get(f"/desk/batches/{batch.pk}/export.csv").content.decode())
        )
    )
    assert list(rows[0])[:4] == ["id", "name", "decision", "decision_by"]
    assert (rows[0]["decision"], rows[0]["decision_match"], rows[0]["decided_detection"]) == (
        "human_made",
        "near_duplicate",
        str(first.pk),
    )
    body = json.loads(logged_in(bob).get(f"/desk/batches/{batch.pk}/export.json").content)
    assert body["detections"][0]["decision"]["value"] == "human_made"
    assert body["detections"][0]["decision"]["distance"] == found.distance


@pytest.mark.django_db(transaction=True)
def test_the_same_bytes_match_and_a_different_picture_does_not(fresh_cms):
    alice = make_user("alice", "view_detection")
    bob = make_user("bob", "view_detection")
    first = _desk_send(alice, "a.png", encoded(picture(1))).detections.get()
    _decide(first, "ai_generated")
    same = _desk_send(bob, "b.png", encoded(picture(1))).detections.get()
    other = _desk_send(bob, "c.png", encoded(picture(5))).detections.get()
    found = matching.decisions_for(Detection.objects.filter(pk__in=[same.pk, other.pk, first.pk]))
    assert found[same.pk].match == matching.Match.SAME_BYTES
    assert found[same.pk].decision == "ai_generated"
    assert found[first.pk].match == matching.Match.THIS_IMAGE
    assert other.pk not in found


@pytest.mark.django_db(transaction=True)
def test_a_match_never_crosses_users_who_may_not_see_each_others_detections(fresh_cms):
    carol = make_user("carol")  # plain API users: each sees only their own detections
    dave = make_user("dave")
    carol_api, dave_api = APIClient(), APIClient()
    carol_api.force_authenticate(carol)
    dave_api.force_authenticate(dave)

    def send(api, data: bytes, name: str) -> dict:
        upload = SimpleUploadedFile(name, data, "image/png")
        response = api.post("/api/detections/", {"file": upload}, format="multipart")
        assert response.status_code == 202, response.content
        return response.json()

    carols = send(carol_api, encoded(picture(1)), "mine.png")
    _decide(Detection.objects.get(pk=carols["id"]), "human_made")

    daves = send(dave_api, encoded(picture(1)), "same.png")  # the very same bytes
    assert dave_api.get(f"/api/detections/{daves['id']}/").json()["decision"] is None
    daves_copy = send(dave_api, resized_jpeg(picture(1)), "copy.jpg")
    assert dave_api.get(f"/api/detections/{daves_copy['id']}/").json()["decision"] is None

    carols_copy = send(carol_api, resized_jpeg(picture(1)), "again.jpg")
    decision = carol_api.get(f"/api/detections/{carols_copy['id']}/").json()["decision"]
    assert decision["value"] == "human_made"
    assert decision["match"] == "near_duplicate"
    assert decision["detection"] == carols["id"]
    assert 0 <= decision["distance"] <= 3
    assert decision["at"]


@pytest.mark.django_db(transaction=True)
def test_the_admin_and_the_api_list_show_the_matched_decision(fresh_cms):
    alice = make_user("alice", "view_detection")
    first = _desk_send(alice, "a.png", encoded(picture(2))).detections.get()
    _decide(first, "human_made")
    copy = _desk_send(alice, "b.png", framed(picture(2))).detections.get()
    admin_user = make_user("boss", "review_detection", "view_detection", staff=True)
    page = logged_in(admin_user).get(f"/admin/cms_plugin/detection/{copy.pk}/change/")
    assert page.status_code == 200
    assert "Confirmed human-made by a reviewer" in page.content.decode()
    listing = logged_in(admin_user).get("/admin/cms_plugin/detection/").content.decode()
    assert f"matches #{first.pk}" in listing

    api = APIClient()
    api.force_authenticate(admin_user)
    rows = {row["id"]: row for row in api.get("/api/detections/").json()["results"]}
    assert rows[copy.pk]["decision"]["detection"] == first.pk
    assert rows[copy.pk]["decision"]["by"] == f"rev{first.pk}"
    assert rows[first.pk]["decision"]["match"] == "this_image"


@pytest.mark.django_db(transaction=True)
def test_the_cms_badge_says_a_reviewer_decided_a_copy(fresh_cms):
    from cms_plugin.contrib.verdicts import badge, latest_detection
    from demo_site.models import NewsPhoto

    alice = make_user("alice", "view_detection")
    first = _desk_send(alice, "a.png", encoded(picture(4))).detections.get()
    _decide(first, "ai_generated")
    photo = NewsPhoto(title="forwarded")
    photo.image.save("forwarded.jpg", io.BytesIO(resized_jpeg(picture(4))), save=True)
    detection = latest_detection(photo)
    assert detection is not None and detection.probability is not None
    shown = badge(detection)
    assert shown["tone"] == "ai"
    assert shown["text"].startswith("confirmed AI-generated")


@pytest.mark.django_db(transaction=True)
def test_detections_scored_before_hashes_get_one_and_then_match(fresh_cms):
    from django.core.management import call_command

    alice = make_user("alice", "view_detection")
    first = _desk_send(alice, "a.png", encoded(picture(6))).detections.get()
    _decide(first, "human_made")
    Detection.objects.filter(pk=first.pk).update(
        phash=None, phash_0=None, phash_1=None, phash_2=None, phash_3=None
    )
    copy = _desk_send(alice, "b.jpg", resized_jpeg(picture(6))).detections.get()
    assert matching.decision_for(Detection.objects.get(pk=copy.pk)) is None
    out = io.StringIO()
    call_command("humanmade_hash", stdout=out)
    assert "Hashed 1 image(s)" in out.getvalue()
    found = matching.decision_for(Detection.objects.get(pk=copy.pk))
    assert found is not None and found.detection_id == first.pk


@pytest.mark.django_db(transaction=True)
def test_copies_decided_both_ways_are_flagged_for_another_look(fresh_cms):
    alice = make_user("alice", "view_detection")
    one = _desk_send(alice, "a.png", encoded(picture(7))).detections.get()
    _decide(one, "human_made")
    other = _desk_send(alice, "b.png", framed(picture(7))).detections.get()
    _decide(other, "ai_generated")
    third = _desk_send(alice, "c.jpg", resized_jpeg(picture(7))).detections.get()
    found = matching.decision_for(Detection.objects.get(pk=third.pk))
    assert found is not None and found.conflicting
    assert "decided the other way" in found.how


def test_flat_and_one_axis_images_get_no_hash_and_match_by_bytes_only():
    flat = Image.new("RGB", (200, 150), (40, 90, 160))
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (150, 1)))
    stripes = Image.new("RGB", (200, 150), (0, 0, 200))
    ImageDraw.Draw(stripes).rectangle((0, 60, 199, 90), fill=(255, 255, 255))
    for plain in (flat, gradient, stripes):
        assert not near_duplicate.is_informative(plain)
        assert near_duplicate.hash_bytes(encoded(plain)) is None
        assert matching.hash_fields(encoded(plain))["phash"] is None
    assert near_duplicate.is_informative(picture(1))
