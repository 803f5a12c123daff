"""cms_plugin's feedback loop: the export of labelled images (privacy, reviewer and confident
labels, the deterministic val slice, dry runs) and re-scoring with a new model (previous
verdicts kept, decisions final, resumable), with the admin and API showing the change."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path

import pytest
from cms_support import ALL_AI, humanmade_conf, make_user, png
from django.core import checks
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from cms_plugin import scoring, services
from cms_plugin.models import Detection
from demo_site.models import NewsPhoto

NEW_COLUMNS = ["label_origin", "model_version", "sha256"]


@pytest.fixture
def cms(settings, tiny_weights, tmp_path):
    settings.HUMANMADE = humanmade_conf(tiny_weights, EXPORT_FIELDS=["api"])
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings


@pytest.fixture
def run_commits(django_capture_on_commit_callbacks):
    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


def _scored(run_commits, data: bytes | None = None, seed: int = 0) -> Detection:
    detection = run_commits(services.score_upload, data or png(seed))
    detection.refresh_from_db()
    assert detection.probability is not None
    return detection


def _set(detection: Detection, **fields) -> Detection:
    """Give a scored Detection the verdict a test needs (the tiny model's are random)."""
    Detection.objects.filter(pk=detection.pk).update(**fields)
    detection.refresh_from_db()
    return detection


def _export(out: Path, *args: str) -> tuple[list[dict], str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("humanmade_export", str(out), *args, stdout=stdout, stderr=stderr)
    rows = []
    if (out / "manifest.csv").is_file():
        with (out / "manifest.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    return rows, stdout.getvalue(), stderr.getvalue()


def _rescore(*args: str) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("humanmade_rescore", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def _val(sha256: str, percent: int = 20) -> bool:
    return int(sha256[:8], 16) % 100 < percent


# --- settings and checks --------------------------------------------------------------------


def test_feedback_settings_have_safe_defaults(settings):
    from cms_plugin.conf import humanmade_settings

    settings.HUMANMADE = {}
    assert humanmade_settings.EXPORT_FIELDS == []
    assert humanmade_settings.COLLECT_CONFIDENT is False
    assert humanmade_settings.CUTOFFS is None


@pytest.mark.parametrize(
    ("overrides", "expected_id"),
    [
        ({"EXPORT_FIELDS": "api"}, "cms_plugin.E010"),
        ({"EXPORT_FIELDS": ["demo_site.NewsPhoto"]}, "cms_plugin.E010"),
        ({"EXPORT_FIELDS": ["demo_site.Other.image"]}, "cms_plugin.E010"),
        ({"EXPORT_FIELDS": ["demo_site.NewsPhoto.image"], "WATCHED_FIELDS": []}, "cms_plugin.W003"),
        ({"COLLECT_CONFIDENT": "yes"}, "cms_plugin.E005"),
        ({"CUTOFFS": "weights"}, "cms_plugin.E003"),  # None means the weights' cut-offs
    ],
)
def test_checks_report_bad_feedback_settings(cms, tiny_weights, overrides, expected_id):
    cms.HUMANMADE = humanmade_conf(tiny_weights, **overrides)
    assert expected_id in [m.id for m in checks.run_checks()]


def test_checks_accept_the_feedback_settings(cms, tiny_weights):
    cms.HUMANMADE = humanmade_conf(
        tiny_weights,
        CUTOFFS=None,
        COLLECT_CONFIDENT=True,
        EXPORT_FIELDS=["demo_site.NewsPhoto.image", "api"],
    )
    assert [m.id for m in checks.run_checks() if m.id.startswith("cms_plugin")] == []


def test_cutoffs_none_uses_the_weights_cutoffs(cms, tiny_weights):
    from detector_core import BandCutoffs

    cms.HUMANMADE = humanmade_conf(tiny_weights, CUTOFFS=None)
    detector = services.get_detector()
    assert detector.cutoffs == BandCutoffs()  # the tiny weights ship no cut-offs of their own
    cms.HUMANMADE = humanmade_conf(tiny_weights, CUTOFFS={"human": 0.1, "ai": 0.9})
    assert services.get_detector().cutoffs == BandCutoffs(0.1, 0.9)


# --- export ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probability", "band", "evidence", "label"),
    [
        (0.0, "likely_human", {}, "human"),
        (0.20, "likely_human", {}, "human"),
        (0.2001, "uncertain", {}, None),
        (0.7999, "uncertain", {}, None),
        (0.80, "likely_ai", {}, "ai"),
        (1.0, "likely_ai", {"evidence": [{"strength": "strong_ai"}]}, "ai"),  # both agree
        (0.9, "likely_ai", {"unstable": True}, None),  # flips under re-encoding
        (0.1, "likely_human", {"evidence": [{"strength": "strong_ai"}]}, None),  # provenance
        (0.1, "likely_ai", {"evidence": [{"strength": "strong_ai"}]}, None),  # band by provenance
        (0.1, "uncertain", {}, None),  # the site's own cut-offs call it uncertain
        (0.1, "likely_human", {"evidence": [{"strength": "weak_ai"}]}, "human"),
        (None, "", {}, None),
    ],
)
def test_confident_label_rules(probability, band, evidence, label):
    from cms_plugin.export import confident_label

    detection = Detection(probability=probability, band=band, evidence=evidence)
    assert confident_label(detection) == label


@pytest.mark.django_db
def test_export_refuses_when_no_source_may_be_exported(cms, tiny_weights, run_commits, tmp_path):
    cms.HUMANMADE = humanmade_conf(tiny_weights)  # EXPORT_FIELDS left at its default []
    detection = _scored(run_commits, seed=1)
    services.record_review(detection, make_user("r", "review_detection"), "human_made")
    with pytest.raises(CommandError, match=r"EXPORT_FIELDS.*is empty") as excinfo:
        call_command("humanmade_export", str(tmp_path / "out"))
    assert '"api"' in str(excinfo.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.django_db
def test_export_of_reviewed_images_has_origin_version_sha_and_a_fixed_split(
    cms, run_commits, tmp_path
):
    reviewer = make_user("desk", "review_detection")
    decided = {}
    for seed, decision in enumerate(["human_made", "ai_generated"] * 4):
        detection = _scored(run_commits, seed=20 + seed)
        services.record_review(detection, reviewer, decision)
        decided[detection.sha256] = "human" if decision == "human_made" else "ai"
    _scored(run_commits, seed=40)  # not reviewed, COLLECT_CONFIDENT off: not exported

    out = tmp_path / "export"
    rows, stdout, _ = _export(out)
    assert {row["sha256"]: row["label"] for row in rows} == decided
    with (out / "manifest.csv").open(newline="") as fh:
        header = next(csv.reader(fh))
    assert header[-3:] == NEW_COLUMNS and len(header) == 18
    for row in rows:
        sha256 = hashlib.sha256((out / row["file"]).read_bytes()).hexdigest()
        assert row["sha256"] == row["sha256_original"] == sha256
        assert row["split"] == ("val" if _val(sha256) else "train")
        assert row["file"].startswith(f"images/{row['split']}/{row['label']}/review-")
        assert (row["label_origin"], row["model_version"]) == ("reviewer", "test-0")
        assert row["evidence"].startswith("human review: ")
        assert f"reviewer #{reviewer.pk}" in row["evidence"]
        assert "desk" not in row["evidence"]  # no reviewer names leave the site
    assert "Exported 8 image(s)" in stdout
    assert "by label: ai 4, human 4" in stdout and "by label_origin: reviewer 8" in stdout

    # Same images, same split, run after run; the percentage moves whole images.
    again, _, _ = _export(out)
    assert [(r["file"], r["split"]) for r in again] == [(r["file"], r["split"]) for r in rows]
    everything_val, _, _ = _export(tmp_path / "all-val", "--val-percent", "100")
    assert {r["split"] for r in everything_val} == {"val"}
    forced, _, _ = _export(tmp_path / "forced", "--split", "train")
    assert {r["split"] for r in forced} == {"train"}
    with pytest.raises(CommandError, match="val-percent"):
        call_command("humanmade_export", str(tmp_path / "x"), "--val-percent", "101")


@pytest.mark.django_db
def test_confident_scores_are_exported_only_when_asked_and_only_beyond_the_cutoffs(
    cms, tiny_weights, run_commits, tmp_path
):
    strong = {"evidence": [{"strength": "strong_ai", "summary": "C2PA: AI"}], "unstable": False}
    human = _set(_scored(run_commits, seed=50), probability=0.05, band="likely_human")
    edge = _set(_scored(run_commits, seed=51), probability=0.20, band="likely_human")
    _set(_scored(run_commits, seed=52), probability=0.21, band="uncertain")
    _set(_scored(run_commits, seed=53), probability=0.79, band="uncertain")
    ai = _set(
        _scored(run_commits, seed=54), probability=0.80, band="likely_ai", status="needs_review"
    )
    _set(
        _scored(run_commits, seed=55),
        probability=0.95,
        band="uncertain",
        evidence={"unstable": True},
    )
    _set(_scored(run_commits, seed=56), probability=0.05, band="likely_ai", evidence=strong)
    _set(_scored(run_commits, seed=57), probability=0.99, band="likely_ai", status="failed")

    rows, _, _ = _export(tmp_path / "off")
    assert rows == []  # COLLECT_CONFIDENT is off: unreviewed images stay home

    cms.HUMANMADE = humanmade_conf(tiny_weights, EXPORT_FIELDS=["api"], COLLECT_CONFIDENT=True)
    rows, stdout, _ = _export(tmp_path / "on")
    got = {row["sha256"]: (row["label"], row["label_origin"]) for row in rows}
    assert got == {
        human.sha256: ("human", "confident_score"),
        edge.sha256: ("human", "confident_score"),
        ai.sha256: ("ai", "confident_score"),
    }
    assert all(row["file"].split("/")[-1].startswith("score-") for row in rows)
    assert all(row["evidence"].startswith("confident score, not reviewed") for row in rows)
    assert "by label_origin: confident_score 3" in stdout


@pytest.mark.django_db
def test_a_reviewers_label_beats_a_confident_score_for_the_same_bytes(
    cms, tiny_weights, run_commits, tmp_path
):
    cms.HUMANMADE = humanmade_conf(tiny_weights, EXPORT_FIELDS=["api"], COLLECT_CONFIDENT=True)
    data = png(60)
    confident = _set(_scored(run_commits, data), probability=0.95, band="likely_ai")
    reviewed = _scored(run_commits, data)
    assert reviewed.evidence["deduplicated_from"] == confident.pk
    services.record_review(reviewed, make_user("r", "review_detection"), "human_made")
    rows, _, _ = _export(tmp_path / "out")
    assert [(r["label"], r["label_origin"], r["origin"]) for r in rows] == [
        ("human", "reviewer", f"humanmade-review:detection/{reviewed.pk}")
    ]


@pytest.mark.django_db
def test_conflicting_reviewers_on_the_same_bytes_skip_the_image(cms, run_commits, tmp_path):
    data = png(61)
    first, second = _scored(run_commits, data), _scored(run_commits, data)
    services.record_review(first, make_user("a", "review_detection"), "human_made")
    services.record_review(second, make_user("b", "review_detection"), "ai_generated")
    clean = _scored(run_commits, seed=62)
    services.record_review(clean, make_user("c", "review_detection"), "ai_generated")
    rows, stdout, stderr = _export(tmp_path / "out")
    assert [r["sha256"] for r in rows] == [clean.sha256]
    assert f"Image {first.sha256[:12]} skipped: reviewers disagree" in stderr
    assert f"#{first.pk}" in stderr and f"#{second.pk}" in stderr
    assert "Exported 1 image(s)" in stdout


@pytest.mark.django_db
def test_dry_run_lists_the_rows_and_writes_nothing(cms, run_commits, tmp_path):
    detection = _scored(run_commits, seed=63)
    services.record_review(detection, make_user("r", "review_detection"), "ai_generated")
    out = tmp_path / "out"
    rows, stdout, _ = _export(out, "--dry-run")
    assert rows == [] and not out.exists()
    split = "val" if _val(detection.sha256) else "train"
    line = stdout.splitlines()[0].split("\t")
    assert line == [
        f"images/{split}/ai/review-{detection.pk}-{detection.sha256[:12]}.png",
        "ai",
        "reviewer",
        "upload",
        "test-0",
    ]
    assert "Dry run, nothing written: would export 1 image(s)" in stdout


@pytest.mark.django_db
def test_export_leaves_out_sources_not_in_export_fields(cms, tiny_weights, run_commits, tmp_path):
    reviewer = make_user("r", "review_detection")
    photo = NewsPhoto(title="private")
    photo.image.save("private.png", ContentFile(png(64)), save=False)
    run_commits(photo.save)
    from_photo = Detection.objects.get(object_id=str(photo.pk))
    from_api = _scored(run_commits, seed=65)
    for detection in (from_photo, from_api):
        services.record_review(detection, reviewer, "human_made")

    rows, _, _ = _export(tmp_path / "api-only")  # EXPORT_FIELDS = ["api"]
    assert [(r["sha256"], r["source_group"]) for r in rows] == [
        (from_api.sha256, "humanmade-review:api")
    ]
    cms.HUMANMADE = humanmade_conf(tiny_weights, EXPORT_FIELDS=["demo_site.NewsPhoto.image"])
    rows, _, _ = _export(tmp_path / "photos-only")
    assert [(r["sha256"], r["source_group"]) for r in rows] == [
        (from_photo.sha256, "humanmade-review:demo_site.newsphoto")
    ]


# --- re-scoring -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_rescore_moves_the_old_verdict_and_keeps_decisions(cms, new_weights, run_commits):
    reviewer = make_user("r", "review_detection")
    waiting = _set(_scored(run_commits, seed=70), band="likely_human", status="scored")
    decided = _scored(run_commits, seed=71)
    services.record_review(decided, reviewer, "human_made")
    before = {d.pk: (d.probability, d.band) for d in (waiting, decided)}

    cms.HUMANMADE = {**cms.HUMANMADE, "WEIGHTS": str(new_weights)}
    stdout, _ = _rescore()
    assert "Re-scored 2 image(s) with model test-1" in stdout
    assert "1 changed band" in stdout and "0 failed" in stdout
    assert "likely human → uncertain: 1" in stdout

    waiting.refresh_from_db()
    assert (waiting.model_version, waiting.band, waiting.status) == (
        "test-1",
        "uncertain",  # the borderline cut-offs: every new verdict is uncertain
        "needs_review",  # so it waits for a person now
    )
    assert (waiting.previous_probability, waiting.previous_band) == before[waiting.pk]
    assert waiting.previous_model_version == "test-0"
    assert waiting.rescored_at is not None
    assert waiting.probability != waiting.previous_probability  # another model
    assert waiting.band_change == "likely human → uncertain"

    decided.refresh_from_db()
    assert (decided.status, decided.decision, decided.reviewer) == (
        "reviewed",
        "human_made",
        reviewer,
    )
    assert (decided.model_version, decided.previous_model_version) == ("test-1", "test-0")
    assert decided.previous_probability == before[decided.pk][0]

    assert services.rescore_detection(waiting.pk) == "already_current"
    again, _ = _rescore()
    assert "Re-scored 0 image(s)" in again
    waiting.refresh_from_db()
    assert waiting.previous_model_version == "test-0"  # not overwritten by a second run


@pytest.mark.django_db
def test_rescore_into_likely_ai_lands_in_the_queue_and_same_bytes_score_once(
    cms, tiny_weights, new_weights, run_commits, monkeypatch
):
    data = png(72)
    first = _set(_scored(run_commits, data), band="likely_human", status="scored")
    second = _set(_scored(run_commits, data), band="likely_human", status="scored")
    cms.HUMANMADE = humanmade_conf(new_weights, CUTOFFS=ALL_AI)
    calls = []
    real_score = services.get_detector().score
    monkeypatch.setattr(
        services.get_detector(), "score", lambda *a, **k: calls.append(1) or real_score(*a, **k)
    )
    _rescore()
    first.refresh_from_db()
    second.refresh_from_db()
    assert len(calls) == 1  # the second took the first's new result
    assert second.evidence["deduplicated_from"] == first.pk
    for detection in (first, second):
        assert (detection.band, detection.status) == ("likely_ai", "needs_review")
        assert detection.band_change == "likely human → likely AI"


@pytest.mark.django_db
def test_interrupted_rescore_resumes_with_the_rest(cms, new_weights, run_commits):
    detections = [_scored(run_commits, seed=80 + i) for i in range(5)]
    cms.HUMANMADE = {**cms.HUMANMADE, "WEIGHTS": str(new_weights)}

    dry, _ = _rescore("--dry-run")
    assert "would re-score 5 of 5 image(s) with model test-1" in dry
    assert set(Detection.objects.values_list("model_version", flat=True)) == {"test-0"}

    stdout, _ = _rescore("--limit", "2")
    assert "Re-scored 2 image(s)" in stdout and "3 left for the next run" in stdout
    versions = dict(Detection.objects.values_list("pk", "model_version"))
    assert [versions[d.pk] for d in detections] == ["test-1"] * 2 + ["test-0"] * 3

    stdout, _ = _rescore()  # the run after the interruption: only the rest
    assert "Re-scored 3 image(s)" in stdout
    assert set(Detection.objects.values_list("model_version", flat=True)) == {"test-1"}
    assert Detection.objects.filter(previous_model_version="test-0").count() == 5


@pytest.mark.django_db
def test_rescore_since_selects_by_creation_date(cms, new_weights, run_commits):
    old = _scored(run_commits, seed=85)
    Detection.objects.filter(pk=old.pk).update(created_at="2020-01-01T00:00:00Z")
    recent = _scored(run_commits, seed=86)
    cms.HUMANMADE = {**cms.HUMANMADE, "WEIGHTS": str(new_weights)}
    _rescore("--since", "2021-01-01")
    versions = dict(Detection.objects.values_list("pk", "model_version"))
    assert (versions[old.pk], versions[recent.pk]) == ("test-0", "test-1")
    with pytest.raises(CommandError, match="not a date"):
        _rescore("--since", "last week")
    with pytest.raises(CommandError, match="at least 1"):
        _rescore("--limit", "0")


@pytest.mark.django_db
def test_rescore_of_a_missing_file_keeps_the_old_verdict(cms, new_weights, run_commits):
    gone = _scored(run_commits, seed=90)
    kept = _scored(run_commits, seed=91)
    os.remove(gone.upload.path)
    before = (gone.probability, gone.band, gone.status, gone.model_version)
    cms.HUMANMADE = {**cms.HUMANMADE, "WEIGHTS": str(new_weights)}
    stdout, stderr = _rescore()
    assert "Re-scored 1 image(s)" in stdout and "1 failed (old verdict kept)" in stdout
    assert f"Detection #{gone.pk}: failed: The image file is gone" in stderr
    gone.refresh_from_db()
    assert (gone.probability, gone.band, gone.status, gone.model_version) == before
    assert (gone.previous_model_version, gone.rescored_at) == ("", None)
    kept.refresh_from_db()
    assert kept.model_version == "test-1"


@pytest.mark.django_db
def test_rescore_retries_storage_errors_then_gives_up_keeping_the_verdict(
    cms, new_weights, run_commits, monkeypatch
):
    detection = _scored(run_commits, seed=96)
    cms.HUMANMADE = {**cms.HUMANMADE, "WEIGHTS": str(new_weights), "TASK_MAX_RETRIES": 2}
    tries = []

    def flaky(detection):
        tries.append(1)
        raise OSError("storage is away")

    monkeypatch.setattr(scoring, "read_image_bytes", flaky)
    outcome = services.dispatch_rescore(detection.pk)
    assert outcome.startswith("failed: re-scoring kept failing and was given up")
    assert "storage is away" in outcome
    assert len(tries) == 3  # the first try and two retries
    fresh = Detection.objects.get(pk=detection.pk)
    assert (fresh.model_version, fresh.probability, fresh.rescored_at) == (
        "test-0",
        detection.probability,
        None,
    )


@pytest.mark.django_db
def test_rescore_task_is_queued_like_scoring(cms, new_weights, run_commits, monkeypatch):
    from cms_plugin.tasks import rescore_detection

    detection = _scored(run_commits, seed=92)
    cms.HUMANMADE = {**cms.HUMANMADE, "WEIGHTS": str(new_weights), "IN_PROCESS": False}
    from celery import current_app

    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **kw: sent.append((name, kw)))
    stdout, _ = _rescore()
    options = {"queue": "humanmade", "soft_time_limit": 120, "time_limit": 180}
    assert sent == [(rescore_detection.name, {"args": [detection.pk], **options})]
    assert "Queued 1 of 1 image(s)" in stdout
    assert rescore_detection.acks_late is True
    assert rescore_detection.name == "cms_plugin.rescore_detection"


def test_rescore_without_weights_is_a_clear_error(cms, tmp_path):
    cms.HUMANMADE = humanmade_conf(tmp_path / "absent.safetensors")
    with pytest.raises(CommandError, match="Cannot load the current model"):
        _rescore()


# --- admin and API ------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_shows_and_filters_band_changes(cms, new_weights, run_commits):
    moved = _set(_scored(run_commits, seed=93), band="likely_human", status="scored")
    same = _scored(run_commits, seed=94)  # uncertain before and after
    never = Detection.objects.create(status="pending")
    cms.HUMANMADE = {**cms.HUMANMADE, "WEIGHTS": str(new_weights)}
    _rescore()
    client = Client()
    client.force_login(make_user("desk", "review_detection", staff=True))
    url = reverse("admin:cms_plugin_detection_changelist")

    changed = client.get(url, {"band_changed": "yes"})
    assert changed.status_code == 200
    assert [d.pk for d in changed.context["cl"].result_list] == [moved.pk]
    html = changed.content.decode()
    assert "band changed by re-score" in html
    assert "likely human → uncertain" in html
    unchanged = client.get(url, {"band_changed": "no"})
    assert [d.pk for d in unchanged.context["cl"].result_list] == [same.pk]
    everything = client.get(url)
    assert {d.pk for d in everything.context["cl"].result_list} == {moved.pk, same.pk, never.pk}

    page = client.get(reverse("admin:cms_plugin_detection_change", args=[moved.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Before the last re-score" in text
    assert "test-0" in text and "Re-scored" in text
    for name in ("previous_band", "previous_probability", "previous_model_version"):
        assert f"field-{name}" in text  # shown, read-only (no input)
        assert f'name="{name}"' not in text


@pytest.mark.django_db
def test_api_shows_the_rescore_fields(cms, new_weights, run_commits):
    detection = _set(_scored(run_commits, seed=95), band="likely_human", status="scored")
    old_probability = detection.probability
    cms.HUMANMADE = {**cms.HUMANMADE, "WEIGHTS": str(new_weights)}
    assert services.rescore_detection(detection.pk) == "rescored"
    client = Client()
    client.force_login(make_user("api-reviewer", "review_detection"))
    body = client.get(f"/api/detections/{detection.pk}/").json()
    assert body["model_version"] == "test-1"
    assert (body["previous_band"], body["previous_model_version"]) == ("likely_human", "test-0")
    assert body["previous_probability"] == old_probability
    assert body["rescored_at"]
    assert body["band"] == "uncertain" and body["status"] == "needs_review"


# --- bad input and interrupted runs ---------------------------------------------------------


@pytest.mark.django_db
def test_export_into_a_file_or_an_unwritable_place_is_a_clear_error(
    cms, run_commits, tmp_path, monkeypatch
):
    detection = _scored(run_commits, seed=110)
    services.record_review(detection, make_user("r", "review_detection"), "human_made")
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    with pytest.raises(CommandError, match="exists and is not a folder"):
        call_command("humanmade_export", str(a_file))

    def denied(self, data):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", denied)
    with pytest.raises(CommandError, match="Cannot write .*Permission denied"):
        call_command("humanmade_export", str(tmp_path / "out"), stdout=io.StringIO())


@pytest.mark.django_db
def test_an_interrupted_export_is_repaired_by_the_next_run(cms, run_commits, tmp_path):
    detection = _scored(run_commits, seed=111)
    services.record_review(detection, make_user("r", "review_detection"), "ai_generated")
    out = tmp_path / "out"
    (row,) = _export(out)[0]
    image = out / row["file"]
    good = image.read_bytes()
    image.write_bytes(good[:20])  # what a killed run used to leave behind
    (out / "manifest.csv").write_text("file,split,la")
    rows, _, stderr = _export(out)
    assert image.read_bytes() == good
    assert [r["file"] for r in rows] == [row["file"]]
    assert "no longer lists" not in stderr
    assert not [p for p in out.rglob(".*partial*")]


@pytest.mark.django_db
def test_a_narrower_rerun_warns_that_earlier_rows_leave_the_manifest(cms, run_commits, tmp_path):
    reviewer = make_user("r", "review_detection")
    old, new = _scored(run_commits, seed=112), _scored(run_commits, seed=113)
    for detection in (old, new):
        services.record_review(detection, reviewer, "human_made")
    Detection.objects.filter(pk=old.pk).update(reviewed_at="2020-01-01T00:00:00Z")
    out = tmp_path / "out"
    assert len(_export(out)[0]) == 2
    rows, _, stderr = _export(out, "--since", "2021-01-01")
    assert [r["sha256"] for r in rows] == [new.sha256]
    assert "1 image(s) of the previous manifest" in stderr and "no longer lists" in stderr


@pytest.mark.django_db
def test_rescore_keeps_the_verdict_when_the_stored_bytes_changed(
    cms, new_weights, run_commits, tmp_path
):
    """A storage that overwrites in place: the decision was about the bytes people saw."""
    reviewer = make_user("r", "review_detection")
    detection = _scored(run_commits, seed=114)
    services.record_review(detection, reviewer, "human_made")
    detection.refresh_from_db()
    before = (detection.sha256, detection.probability, detection.band, detection.model_version)
    with open(detection.upload.path, "wb") as fh:
        fh.write(png(115))

    cms.HUMANMADE = {**cms.HUMANMADE, "WEIGHTS": str(new_weights)}
    stdout, stderr = _rescore()
    assert "1 failed (old verdict kept)" in stdout
    assert "stored file changed since it was scored" in stderr
    detection.refresh_from_db()
    after = (detection.sha256, detection.probability, detection.band, detection.model_version)
    assert after == before
    assert (detection.status, detection.decision) == ("reviewed", "human_made")
    # So the export still sees the mismatch and does not pin the decision on other bytes.
    rows, _, stderr = _export(tmp_path / "out")
    assert rows == [] and "stored file changed" in stderr


@pytest.mark.django_db
def test_rescore_with_an_unreachable_broker_is_a_clear_error(
    cms, new_weights, run_commits, monkeypatch
):
    from kombu.exceptions import OperationalError

    from cms_plugin.tasks import rescore_detection

    first, second = _scored(run_commits, seed=116), _scored(run_commits, seed=117)
    cms.HUMANMADE = {**cms.HUMANMADE, "WEIGHTS": str(new_weights), "IN_PROCESS": False}
    sent = []

    def publish(name, args, **kwargs) -> None:
        assert name == rescore_detection.name
        if sent:
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        sent.extend(args)

    from celery import current_app

    monkeypatch.setattr(current_app, "send_task", publish)
    with pytest.raises(CommandError, match=r"Queued 1 of 2 image\(s\), then the Celery broker"):
        _rescore()
    assert sent == [first.pk]
    second.refresh_from_db()
    assert second.model_version == "test-0"


@pytest.mark.django_db
def test_the_export_manifest_neutralises_spreadsheet_formulas(cms, run_commits, tmp_path):
    reviewer = make_user("desk", "review_detection")
    services.record_review(_scored(run_commits, seed=60), reviewer, "human_made")
    formula = '=HYPERLINK("https://evil.example/","click")'
    rows, _, _ = _export(tmp_path / "out", "--license", formula, "--source-group", "@SUM(1)")
    assert rows[0]["license"] == "'" + formula
    assert rows[0]["source_group"].startswith("'@SUM(1):")
    assert rows[0]["file"].startswith("images/")  # ordinary cells are written as they are
