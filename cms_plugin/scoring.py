"""Score a queued Detection, or re-score a scored one with a new model; safe to repeat.

Called by the Celery tasks (or in-process); the same bytes are scored once per model
version. A failure worth retrying raises `TransientError`; every other engine error ends
as `failed` with the engine's message, written for people.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from django.core.files.base import ContentFile
from django.db import DatabaseError, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from detector_core.memory import release_freed_memory

from .conf import humanmade_settings
from .engine import get_detector, video_limits
from .models import Detection
from .storage import read_image_bytes

logger = logging.getLogger("cms_plugin")


class TransientError(Exception):
    """Scoring failed for a reason that may pass (storage, database, network, weights)."""


UNFINISHED = (Detection.Status.PENDING, Detection.Status.SCORING)


def run_detection(detection_id: int) -> str:
    """Score one Detection; safe to call again for the same id (re-delivery).

    Returns what happened ("missing", "already_done", or the final status). Raises
    `TransientError` for failures worth retrying; every other engine error ends as `failed`
    with the engine's message.
    """
    from detector_core import FetchError, HumanmadeError, WeightsError
    from detector_core.errors import FetchTimeoutError, HTTPStatusError

    try:
        with transaction.atomic():
            detection = Detection.objects.select_for_update().filter(pk=detection_id).first()
            if detection is None:
                return "missing"
            if detection.is_final:
                return "already_done"
            if detection.attempts >= int(humanmade_settings.TASK_MAX_ATTEMPTS):
                return mark_failed(detection_id, gave_up_message(detection.attempts))
            detection.status = Detection.Status.SCORING
            detection.attempts += 1
            detection.save(update_fields=["status", "attempts", "updated_at"])
    except DatabaseError as exc:  # locked or away: nothing was changed, try again later
        raise TransientError(str(exc)) from exc
    try:
        return _score(detection)
    except (FetchTimeoutError, WeightsError, DatabaseError) as exc:
        raise TransientError(str(exc)) from exc
    except HTTPStatusError as exc:
        if exc.status >= 500 or exc.status == 429:
            raise TransientError(str(exc)) from exc
        return mark_failed(detection_id, str(exc))
    except (HumanmadeError, FetchError, FileNotFoundError) as exc:
        return mark_failed(detection_id, _message(exc))
    except OSError as exc:
        raise TransientError(f"could not read the image: {exc}") from exc


def _message(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return "The image file is gone from storage; it cannot be scored."
    return str(exc)


def mark_failed(detection_id: int, message: str) -> str:
    """Fail a Detection that is still waiting or scoring (a finished verdict stays)."""
    Detection.objects.filter(pk=detection_id, status__in=UNFINISHED).update(
        status=Detection.Status.FAILED, error=message[:2000], updated_at=timezone.now()
    )
    return Detection.Status.FAILED


def gave_up_message(attempts: int) -> str:
    return (
        f"Scoring was started {attempts} times and never finished (the worker was stopped "
        "or lost the task each time); it was given up. Send the image again to retry."
    )


def _read_image(detection: Detection) -> bytes:
    from detector_core.fetch import fetch_url

    if detection.source_url and not detection.upload:
        data = fetch_url(detection.source_url, get_detector().fetch_policy).data
        # Keep what was fetched, for reviewers and the export; the URL may change later.
        name = hashlib.sha256(data).hexdigest()[:16] + ".img"
        detection.upload.save(name, ContentFile(data), save=False)
        Detection.objects.filter(pk=detection.pk).update(upload=detection.upload.name)
        return data
    return read_image_bytes(detection)


def _score(detection: Detection) -> str:
    started = time.monotonic()
    data = _read_image(detection)
    sha256, result = _verdict_for(detection, data, started, as_slow_as_scoring=True)
    status = status_for_band(result["band"])
    Detection.objects.filter(pk=detection.pk, status=Detection.Status.SCORING).update(
        sha256=sha256,
        status=status,
        error="",
        scored_at=timezone.now(),
        updated_at=timezone.now(),
        **result,
    )
    return status


def _verdict_for(
    detection: Detection, data: bytes, started: float, *, as_slow_as_scoring: bool = False
) -> tuple[str, dict[str, Any]]:
    """(sha256, the verdict's fields) from the current model; the same bytes are scored once
    per model version: an earlier Detection's result is taken when there is one.

    The earlier one may be another user's, so a taken result tells nothing of it that a
    scoring of one's own would not: its `elapsed_ms` is this Detection's own time since
    `started`, and `as_slow_as_scoring` (a first scoring, whose status its sender watches)
    waits until the earlier scoring's time has passed, or half the soft time limit.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    detector = get_detector()
    version = detector.model_version
    earlier = (
        Detection.objects.filter(sha256=sha256, model_version=version, probability__isnull=False)
        .exclude(pk=detection.pk)
        .exclude(status=Detection.Status.STALE)  # its heatmap may be deleted
        .order_by("pk")
        .first()
    )
    from detector_core.video import media_kind

    from .matching import PART_FIELDS, hash_fields

    is_clip = media_kind(data) is not None
    # The perceptual hash a reviewer's decision is matched by (none for a clip).
    hashes = {"phash": None, **dict.fromkeys(PART_FIELDS)} if is_clip else hash_fields(data)
    if earlier is not None:
        evidence = dict(earlier.evidence or {})
        took = evidence.get("elapsed_ms")
        if as_slow_as_scoring and isinstance(took, int | float):
            ceiling = float(humanmade_settings.TASK_SOFT_TIME_LIMIT) / 2
            time.sleep(max(0.0, min(took / 1000, ceiling) - (time.monotonic() - started)))
        evidence["elapsed_ms"] = round((time.monotonic() - started) * 1000, 2)
        return sha256, {
            **hashes,
            "probability": earlier.probability,
            "band": earlier.band,
            "decided_by": earlier.decided_by,
            "model_version": earlier.model_version,
            "evidence": {**evidence, "deduplicated_from": earlier.pk},
            "heatmap": earlier.heatmap.name,
        }
    if is_clip:
        clip = detector.score_video(data, limits=video_limits())
        return sha256, {
            **hashes,
            "probability": clip.ai_probability,
            "band": clip.band.value,
            "decided_by": clip.decided_by.value,
            "model_version": clip.model_version,
            # Holds the frames' timeline; "media" in it marks the Detection as a clip.
            "evidence": clip.to_dict(),
            # Where an image has its heatmap figure, a clip has its timeline figure.
            "heatmap": _save_timeline(detection, sha256, clip),
        }
    verdict = detector.score(data, heatmap=bool(humanmade_settings.HEATMAP))
    evidence = verdict.to_dict()
    evidence.pop("heatmap", None)
    overlay = _save_overlay(detection, data, verdict)
    # The figure decoded the image once more: give that memory back too.
    release_freed_memory(verdict.image.width * verdict.image.height)
    return sha256, {
        **hashes,
        "probability": verdict.ai_probability,
        "band": verdict.band.value,
        "decided_by": verdict.decided_by.value,
        "model_version": verdict.model_version,
        "evidence": evidence,
        "heatmap": overlay,
    }


def rescore_detection(detection_id: int) -> str:
    """Score a scored Detection again with the current model; safe to repeat or resume.

    Returns "missing", "not_scored" (never scored: its first scoring is still to come),
    "already_current" (scored by the current model already), "rescored", or
    "failed: <why>" when the image cannot be read or decoded, or its stored bytes are no
    longer those that were scored, in which case the old verdict stays exactly as it was.
    The old probability, band and model version move to `previous_*`. A person's decision
    is final: a reviewed Detection keeps its status and decision; any other takes the
    status of its new band, so a verdict that moved into uncertain (or likely AI) waits in
    the review queue. Raises `TransientError` for failures worth retrying (storage,
    database, weights).
    """
    from detector_core import HumanmadeError, WeightsError

    started = time.monotonic()
    detection = Detection.objects.filter(pk=detection_id).first()
    if detection is None:
        return "missing"
    if detection.probability is None:
        return "not_scored"
    try:
        if detection.model_version == get_detector().model_version:
            return "already_current"
        data = read_image_bytes(detection)
        if detection.sha256 and hashlib.sha256(data).hexdigest() != detection.sha256:
            # A storage that overwrites in place put other bytes under the same name. The
            # verdict (and any reviewer's decision) is about the bytes that were seen; taking
            # the new sha256 would pin that decision on an image nobody looked at, and the
            # export would then train on it.
            message = "the stored file changed since it was scored; the old verdict is kept"
            logger.warning("detection %s: not re-scored: %s", detection_id, message)
            return f"failed: {message}"
        sha256, result = _verdict_for(detection, data, started)
    except (WeightsError, DatabaseError) as exc:
        raise TransientError(str(exc)) from exc
    except (HumanmadeError, FileNotFoundError) as exc:
        message = _message(exc)
        logger.warning("detection %s: not re-scored, old verdict kept: %s", detection_id, message)
        return f"failed: {message}"
    except OSError as exc:
        raise TransientError(f"could not read the image: {exc}") from exc
    now = timezone.now()
    # Conditional on the verdict read above, so that a concurrent re-score (a re-delivered
    # message) cannot move the new verdict into previous_*; and decided in the database, so
    # that a decision recorded meanwhile stays final.
    moved = Detection.objects.filter(
        pk=detection.pk, model_version=detection.model_version, probability=detection.probability
    ).update(
        previous_probability=detection.probability,
        previous_band=detection.band,
        previous_model_version=detection.model_version,
        rescored_at=now,
        sha256=sha256,
        status=Case(
            When(status=Detection.Status.REVIEWED, then=Value(Detection.Status.REVIEWED)),
            When(status=Detection.Status.STALE, then=Value(Detection.Status.STALE)),
            default=Value(status_for_band(result["band"])),
        ),
        updated_at=now,
        **result,
    )
    if not moved:
        return "already_current"
    logger.info(
        "detection %s re-scored: %s %s -> %s %s",
        detection_id,
        detection.model_version,
        detection.band,
        result["model_version"],
        result["band"],
    )
    return "rescored"


def status_for_band(band: str) -> str:
    if band == Detection.Band.UNCERTAIN:
        return Detection.Status.NEEDS_REVIEW
    if band == Detection.Band.LIKELY_AI and humanmade_settings.REVIEW_LIKELY_AI:
        return Detection.Status.NEEDS_REVIEW
    return Detection.Status.SCORED


def _save_timeline(detection: Detection, sha256: str, clip: Any) -> str:
    """The clip's timeline figure (frame probabilities over time, the driving frames)."""
    import io

    from detector_core.clip_figure import render_timeline

    buf = io.BytesIO()
    render_timeline(clip).save(buf, format="PNG")
    name = f"{sha256[:16]}-{clip.model_version}-timeline.png"
    stored = Detection._meta.get_field("heatmap")
    return stored.storage.save(
        stored.generate_filename(detection, name), ContentFile(buf.getvalue())
    )


def _save_overlay(detection: Detection, data: bytes, verdict: Any) -> str:
    """The heatmap figure (image and map side by side), a separate PNG; the original stays
    untouched."""
    from .images import heatmap_figure

    figure = heatmap_figure(data, verdict)
    if figure is None:
        return ""
    name = f"{hashlib.sha256(data).hexdigest()[:16]}-{verdict.model_version}.png"
    stored = Detection._meta.get_field("heatmap")
    return stored.storage.save(stored.generate_filename(detection, name), ContentFile(figure))
