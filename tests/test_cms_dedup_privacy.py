"""What a result taken from an earlier Detection of the same bytes (scored once per model
version) could tell a user about other users' uploads: neither the earlier scoring's timing
evidence, nor, by finishing at once, that someone sent those bytes before."""

from __future__ import annotations

import time

import pytest
from cms_support import humanmade_conf, make_user, png

from cms_plugin import services
from cms_plugin.models import Detection

FIRST_MS = 400.0  # what the first scoring of these bytes took, as its evidence says


def _score_now(detection: Detection) -> float:
    """Score the queued Detection as a worker does; the seconds it took."""
    started = time.monotonic()
    services.run_detection(detection.pk)
    return time.monotonic() - started


@pytest.mark.django_db
def test_a_copied_result_carries_its_own_timing_and_takes_as_long_as_a_scoring(
    cms, django_capture_on_commit_callbacks
):
    data = png(93)
    with django_capture_on_commit_callbacks(execute=False):
        first = services.score_upload(data, user=make_user("alice"))
    _score_now(first)
    first.refresh_from_db()
    assert first.probability is not None and "deduplicated_from" not in first.evidence
    # An earlier scoring that took FIRST_MS (a large image on a busy worker, say).
    first.evidence = {**first.evidence, "elapsed_ms": FIRST_MS}
    first.save(update_fields=["evidence"])

    with django_capture_on_commit_callbacks(execute=False):
        second = services.score_upload(data, user=make_user("bob"))
    seconds = _score_now(second)
    second.refresh_from_db()
    assert second.evidence["deduplicated_from"] == first.pk  # the result was taken
    assert second.probability == first.probability
    # It used to carry alice's 400.0 ms, and be final in a few milliseconds.
    assert second.evidence["elapsed_ms"] != FIRST_MS
    assert seconds >= FIRST_MS / 1000
    assert second.evidence["elapsed_ms"] >= FIRST_MS


@pytest.mark.django_db
def test_a_rescore_that_takes_an_earlier_result_does_not_copy_its_timing(
    cms, tiny_weights, new_weights, django_capture_on_commit_callbacks
):
    data = png(94)
    with django_capture_on_commit_callbacks(execute=True):
        mine = services.score_upload(data, user=make_user("carol"))
    cms.HUMANMADE = humanmade_conf(new_weights)
    with django_capture_on_commit_callbacks(execute=True):
        other = services.score_upload(data, user=make_user("dave"))  # scored by test-1
    other.refresh_from_db()
    Detection.objects.filter(pk=other.pk).update(
        evidence={**other.evidence, "elapsed_ms": FIRST_MS}
    )
    assert services.rescore_detection(mine.pk) == "rescored"
    mine.refresh_from_db()
    assert mine.evidence["deduplicated_from"] == other.pk and mine.model_version == "test-1"
    assert mine.evidence["elapsed_ms"] != FIRST_MS
