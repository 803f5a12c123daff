"""The checking desk: batches of files, ZIPs and URLs, its permissions, reports and exports.
Scoring runs in-process on the tiny weights, so a batch is scored when its request commits."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from cms_support import humanmade_conf, logged_in, make_user, png
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from cms_plugin.models import Batch, Detection

DESK = "/desk/"


def _zip(members: dict[str, bytes]) -> SimpleUploadedFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return SimpleUploadedFile("pack.zip", buf.getvalue(), "application/zip")


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, "image/png")


def _send(client: Client, files=(), urls: str = ""):
    return client.post(DESK, {"files": list(files), "urls": urls})


@pytest.mark.django_db(transaction=True)
def test_the_desk_needs_the_review_queues_permission(fresh_cms):
    assert Client().get(DESK).status_code == 302  # to the login page
    assert logged_in(make_user("nobody", staff=True)).get(DESK).status_code == 403
    assert logged_in(make_user("viewer", "view_detection")).get(DESK).status_code == 200
    assert logged_in(make_user("reviewer", "review_detection")).get(DESK).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_files_a_zip_and_urls_become_one_batch(fresh_cms):
    editor = make_user("editor", "view_detection")
    pack = _zip(
        {"one.png": png(11), "sub/two.png": png(12), "notes.txt": b"hello", "__MACOSX/x": b""}
    )
    response = _send(
        logged_in(editor),
        [_upload("a.png", png(1)), _upload("b.png", png(2)), pack],
        "http://127.0.0.1:9/a.png\n\nftp://example.org/x.png\n",
    )
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert response["Location"] == reverse("cms_plugin_desk:batch", args=[batch.pk])
    names = sorted(batch.names.values())
    assert names == ["a.png", "b.png", "pack.zip/one.png", "pack.zip/sub/two.png"]
    refused = {item["name"]: item["reason"] for item in batch.refused}
    assert set(refused) == {
        "pack.zip/notes.txt",
        "ftp://example.org/x.png",
        "http://127.0.0.1:9/a.png",
    }
    assert "not an image" in refused["pack.zip/notes.txt"]
    assert "only http and https" in refused["ftp://example.org/x.png"]
    assert "loopback" in refused["http://127.0.0.1:9/a.png"]  # the fetch policy, at once
    statuses = {d.status for d in batch.detections.all()}
    assert statuses <= {"scored", "needs_review"}
    assert all(d.submitted_by == editor for d in batch.detections.all())


@pytest.mark.django_db(transaction=True)
def test_batch_page_report_and_exports(fresh_cms):
    editor = make_user("editor", "view_detection")
    client = logged_in(editor)
    _send(client, [_upload("a.png", png(1, 160, 120)), _upload("b.png", png(2))])
    batch = Batch.objects.get()
    page = client.get(reverse("cms_plugin_desk:batch", args=[batch.pk])).content.decode()
    assert "2 of 2 checked" in page
    detections = list(batch.detections.order_by("pk"))
    for detection in detections:
        assert detection.summary in page

    report_url = reverse("cms_plugin_desk:report", args=[detections[0].pk])
    colleague = logged_in(make_user("colleague", "review_detection"))
    report = colleague.get(report_url)
    assert report.status_code == 200
    html = report.content.decode()
    assert detections[0].summary in html and "a.png" in html
    assert reverse("cms_plugin_desk:heatmap", args=[detections[0].pk]) in html
    heatmap = colleague.get(reverse("cms_plugin_desk:heatmap", args=[detections[0].pk]))
    assert heatmap["Content-Type"] == "image/png" and heatmap.content[:4] == b"\x89PNG"
    thumb = colleague.get(reverse("cms_plugin_desk:thumbnail", args=[detections[0].pk]))
    assert thumb["Content-Type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
    assert logged_in(make_user("outsider", staff=True)).get(report_url).status_code == 403

    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(reverse("cms_plugin_desk:export-csv", args=[batch.pk])).content.decode()
            )
        )
    )
    assert [r["name"] for r in rows] == ["a.png", "b.png"]
    assert [r["headline"] for r in rows] == [d.summary for d in detections]
    assert rows[0]["report_url"].endswith(report_url)
    exported = client.get(reverse("cms_plugin_desk:export-json", args=[batch.pk]))
    assert exported["Content-Disposition"].endswith(f'humanmade-batch-{batch.pk}.json"')
    body = json.loads(exported.content)
    assert [d["id"] for d in body["detections"]] == [d.pk for d in detections]
    assert body["detections"][0]["band"] == detections[0].band
    assert body["detections"][0]["decided_by"] in ("pixels", "instability")


@pytest.mark.django_db(transaction=True)
def test_history_is_the_users_own(fresh_cms):
    alice, bob = make_user("alice", "view_detection"), make_user("bob", "view_detection")
    _send(logged_in(alice), [_upload("a.png", png(1))])
    _send(logged_in(bob), [_upload("b.png", png(2))])
    page = logged_in(alice).get(DESK)
    assert [b.created_by for b in page.context["history"]] == [alice]


@pytest.mark.django_db(transaction=True)
def test_limits_refuse_with_reasons_instead_of_dropping(fresh_cms, settings, tiny_weights):
    settings.HUMANMADE = humanmade_conf(tiny_weights, DESK_MAX_FILES=2, MAX_UPLOAD_BYTES=60_000)
    client = logged_in(make_user("editor", "view_detection"))
    big = png(9, 400, 300)
    assert len(big) > 60_000
    files = [_upload(n, png(i)) for i, n in enumerate(("a.png", "b.png", "c.png"))]
    _send(client, [*files, _upload("big.png", big)])
    batch = Batch.objects.get()
    assert batch.detections.count() == 2
    refused = {item["name"]: item["reason"] for item in batch.refused}
    assert refused["c.png"] == "Over the limit of 2 per batch."
    assert "larger than the upload limit" in refused["an uploaded file"]


def test_zip_members_over_the_limit_are_refused_without_inflating(tmp_path):
    from cms_plugin.desk.submissions import Refused, expand_files

    pack = _zip({"big.png": b"\0" * 100_000, "small.png": b"\1" * 10})
    found = dict(expand_files([pack], max_bytes=1_000))
    assert isinstance(found["pack.zip/big.png"], Refused)
    assert "limit is 1,000" in str(found["pack.zip/big.png"])
    assert found["pack.zip/small.png"] == b"\1" * 10


@pytest.mark.django_db(transaction=True)
def test_empty_and_broken_submissions_are_clear(fresh_cms):
    client = logged_in(make_user("editor", "view_detection"))
    empty = _send(client)
    assert empty.status_code == 400 and "Choose image files" in empty.content.decode()
    broken = _send(
        client, [SimpleUploadedFile("x.zip", b"PK\x03\x04 but not really", "application/zip")]
    )
    assert broken.status_code == 400
    assert "ZIP archive cannot be read" in broken.content.decode()
    assert not Batch.objects.exists()  # no empty "0 of 0" batch in the history
    assert Detection.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_desk_csv_neutralises_cells_a_spreadsheet_would_run(fresh_cms):
    user = make_user("viewer", "view_detection")
    client = logged_in(user)
    # (Django's upload handling keeps a file name's last path part and strips its spaces.)
    names = ['=HYPERLINK("evil.example").png', "+1.png", "-2.png", "@cmd.png"]
    files = [_upload(name, png(seed)) for seed, name in enumerate(names)]
    response = _send(client, files)
    batch = Batch.objects.get(pk=int(response.url.rstrip("/").split("/")[-1]))
    body = client.get(reverse("cms_plugin_desk:export-csv", args=[batch.pk])).content.decode()
    written = [row["name"] for row in csv.DictReader(io.StringIO(body))]
    assert sorted(written) == sorted("'" + name for name in names)
    assert not any(cell.startswith(("=", "+", "-", "@", "\t")) for cell in written)
    # The JSON keeps the names as sent: it is data, not a spreadsheet.
    exported = client.get(reverse("cms_plugin_desk:export-json", args=[batch.pk])).json()
    assert sorted(d["name"] for d in exported["detections"]) == sorted(names)


@pytest.mark.django_db(transaction=True)
def test_a_submission_with_every_input_refused_leaves_no_empty_batch(fresh_cms):
    client = logged_in(make_user("viewer", "view_detection"))
    response = _send(client, [_upload("notes.png", b"not an image at all")], "ftp://x.org/a.png")
    assert response.status_code == 400
    page = response.content.decode()
    assert "every input was refused" in page
    assert "notes.png" in page and "ftp://x.org/a.png" in page  # each with its reason
    assert not Batch.objects.exists()
    assert "None yet." in client.get(DESK).content.decode()


@pytest.mark.django_db(transaction=True)
def test_refused_inputs_are_rows_of_the_csv_too(fresh_cms):
    client = logged_in(make_user("viewer", "view_detection"))
    response = _send(client, [_upload("a.png", png(1)), _upload("bad.png", b"nope")])
    batch = Batch.objects.get(pk=int(response.url.rstrip("/").split("/")[-1]))
    body = client.get(reverse("cms_plugin_desk:export-csv", args=[batch.pk])).content.decode()
    rows = {row["name"]: row for row in csv.DictReader(io.StringIO(body))}
    assert rows["bad.png"]["status"] == "refused" and rows["bad.png"]["error"]
    assert rows["a.png"]["status"] != "refused"


@pytest.mark.django_db(transaction=True)
def test_a_reused_detections_report_leads_back_to_the_batch_it_was_opened_from(fresh_cms):
    client = logged_in(make_user("viewer", "view_detection"))
    first = Batch.objects.get(pk=int(_send(client, [_upload("a.png", png(3))]).url.split("/")[-2]))
    again = Batch.objects.get(pk=int(_send(client, [_upload("b.png", png(3))]).url.split("/")[-2]))
    detection = again.detections.get()
    assert first.detections.get() == detection  # the same bytes: the same Detection, reused
    table = client.get(reverse("cms_plugin_desk:batch", args=[again.pk])).content.decode()
    link = reverse("cms_plugin_desk:report", args=[detection.pk]) + f"?batch={again.pk}"
    assert link in table
    report = client.get(link).content.decode()
    assert f">Batch #{again.pk}</a>" in report and f">Batch #{first.pk}</a>" not in report
    assert "b.png" in report
    # Without ?batch=, the reader's own latest batch that holds it.
    plain = client.get(reverse("cms_plugin_desk:report", args=[detection.pk])).content.decode()
    assert f">Batch #{again.pk}</a>" in plain
