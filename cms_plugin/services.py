"""The domain functions: queue an image, score a queued Detection, record a decision.

Views, signals and the Celery task stay thin and call these. Only detector_core's public
API is used; its `HumanmadeError` messages are written for people and shown as they are.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile
from django.db import DatabaseError, transaction
from django.db.models import Case, QuerySet, Value, When
from django.utils import timezone

from .conf import humanmade_settings
from .models import Detection, Review

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.db.models import Model

    from detector_core import Detector

logger = logging.getLogger("cms_plugin")

_FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}


class TransientError(Exception):
    """Scoring failed for a reason that may pass (storage, database, network, weights)."""


class ReviewRefused(Exception):
    """A decision cannot be recorded for this Detection in its current state."""


class QueueUnavailable(Exception):
    """The Celery broker could not be reached: nothing was queued."""


# --- the detector -------------------------------------------------------------------------

_detector: Detector | None = None
_detector_lock = threading.Lock()


def get_detector() -> Detector:
    """One Detector per process, built from HUMANMADE; rebuilt when the setting changes."""
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                from detector_core import BandCutoffs, Detector
                from detector_core.fetch import FetchPolicy
                from detector_core.intake import IntakeLimits

                conf = humanmade_settings
                _detector = Detector(
                    conf.WEIGHTS,
                    # None: the cut-offs shipped with the weights, made for their calibration.
                    cutoffs=None if conf.CUTOFFS is None else BandCutoffs(**conf.CUTOFFS),
                    limits=IntakeLimits(max_bytes=int(conf.MAX_UPLOAD_BYTES)),
                    fetch_policy=FetchPolicy(
                        max_bytes=int(conf.MAX_UPLOAD_BYTES),
                        allow_hosts=frozenset(conf.URL_ALLOW_HOSTS),
                    ),
                    device=conf.DEVICE,
                )
    return _detector


def forget_detector() -> None:
    global _detector
    with _detector_lock:
        _detector = None


# --- queueing -----------------------------------------------------------------------------


def runs_in_process() -> bool:
    """True when scoring runs in this process after commit instead of on a Celery worker."""
    setting = humanmade_settings.IN_PROCESS
    if setting is not None:
        return bool(setting)
    from celery import current_app

    return not current_app.conf.broker_url


def enqueue(detection: Detection) -> None:
    """Queue scoring once the current transaction commits (never for a rolled-back save).

    Afterwards `detection.queued` is True, or False when the broker could not be reached
    (the row stays `pending` and `sweep_stuck` queues it later); unset while the
    transaction is still open.
    """

    def send() -> None:
        detection.queued = dispatch(detection.pk)

    transaction.on_commit(send)


def dispatch(detection_id: int) -> bool:
    """Queue (or, in-process, run) the scoring; False when the broker cannot be reached."""
    from .tasks import score_detection

    try:
        _send(score_detection, detection_id)
    except QueueUnavailable as exc:
        # The row is stored and stays pending: the sweeper queues it once the broker is back.
        logger.warning("detection %s: not queued, left pending: %s", detection_id, exc)
        return False
    return True


def dispatch_rescore(detection_id: int) -> str | None:
    """Re-score with the current model: in-process (returns the outcome) or queued (None).

    Raises `QueueUnavailable` when the broker cannot be reached.
    """
    from .tasks import rescore_detection

    return _send(rescore_detection, detection_id)


def _send(task: Any, detection_id: int) -> str | None:
    if runs_in_process():
        result = task.apply(args=[detection_id])
        if result.successful():
            return result.result
        return f"failed: {result.result}"
    conf = humanmade_settings
    try:
        task.apply_async(
            args=[detection_id],
            queue=conf.CELERY_QUEUE,
            soft_time_limit=conf.TASK_SOFT_TIME_LIMIT,
            time_limit=conf.TASK_TIME_LIMIT,
        )
    except Exception as exc:
        # kombu and the transports raise many types for a broker that is down (kombu's
        # OperationalError, redis' ConnectionError, socket errors); all mean "not queued".
        raise QueueUnavailable(f"the Celery broker could not be reached ({exc})") from exc
    return None


def queue_field(instance: Model, field_name: str) -> Detection | None:
    """A Detection for a watched object's file field, unless that very file was queued.

    A Detection of that very file still `pending` is queued again (the broker may have been
    down when it was created) and returned.
    """
    from django.contrib.contenttypes.models import ContentType

    field_file = getattr(instance, field_name)
    if not field_file or not field_file.name:
        return None
    content_type = ContentType.objects.get_for_model(instance)
    last = (
        Detection.objects.filter(
            content_type=content_type, object_id=str(instance.pk), field_name=field_name
        )
        .order_by("-pk")
        .first()
    )
    if last is not None and last.file_name == field_file.name:
        if last.status == Detection.Status.PENDING:
            enqueue(last)  # perhaps never queued (broker down): a duplicate message is harmless
            return last
        return None  # saved again without a new file
    from .sources import uploader_of

    detection = Detection.objects.create(
        content_type=content_type,
        object_id=str(instance.pk),
        field_name=field_name,
        file_name=field_file.name,
        submitted_by=uploader_of(instance),
    )
    earlier = Detection.objects.filter(
        content_type=content_type, object_id=str(instance.pk), field_name=field_name
    ).exclude(pk=detection.pk)
    retire(earlier, f"A new file replaced this one (Detection #{detection.pk}).")
    enqueue(detection)
    return detection


def retire_object(instance: Model) -> int:
    """The watched object was deleted: its undecided Detections go stale, and the heatmaps
    drawn over its photo leave storage. Decisions stay (they train the next model)."""
    from django.contrib.contenttypes.models import ContentType

    detections = Detection.objects.filter(
        content_type=ContentType.objects.get_for_model(instance), object_id=str(instance.pk)
    )
    retired = retire(detections, "The image was deleted.")
    _drop_heatmaps(detections)
    return retired


def retire(detections: QuerySet[Detection], reason: str) -> int:
    """Mark the undecided ones among `detections` stale (out of the review queue), with
    `reason`; their heatmaps go too. Returns how many."""
    undecided = detections.exclude(status__in=[Detection.Status.REVIEWED, Detection.Status.STALE])
    ids = list(undecided.values_list("pk", flat=True))
    if not ids:
        return 0
    Detection.objects.filter(pk__in=ids).update(
        status=Detection.Status.STALE, error=reason, updated_at=timezone.now()
    )
    _drop_heatmaps(Detection.objects.filter(pk__in=ids))
    logger.info("detections %s are stale: %s", ids, reason)
    return len(ids)


def _drop_heatmaps(detections: QuerySet[Detection]) -> None:
    """Delete these Detections' heatmap files, except those that a Detection still in use
    shares (the same bytes are scored once: deduplicated Detections share the heatmap)."""
    ids = list(detections.exclude(heatmap="").values_list("pk", flat=True))
    names = set(Detection.objects.filter(pk__in=ids).values_list("heatmap", flat=True))
    still_used = set(
        Detection.objects.filter(heatmap__in=names)
        .exclude(pk__in=ids)
        .exclude(status=Detection.Status.STALE)
        .values_list("heatmap", flat=True)
    )
    Detection.objects.filter(pk__in=ids).exclude(heatmap__in=still_used).update(heatmap="")
    storage = Detection._meta.get_field("heatmap").storage
    for name in names - still_used:
        try:
            storage.delete(name)
        except OSError as exc:  # a missing file is no reason to fail a delete in the CMS
            logger.warning("could not delete heatmap %s: %s", name, exc)


def score_upload(file: Any, *, user: AbstractBaseUser | None = None) -> Detection:
    """Queue an uploaded file (Django UploadedFile, any binary file object, or bytes).

    For custom views: raises `detector_core.errors.ImageError` (message for people) when the
    bytes are empty, too large, too small to judge or not a decodable image. The same user
    sending the same bytes again gets their earlier Detection back (queued again while it is
    still pending: it may never have reached the broker). Scoring happens after commit; see
    `enqueue` for `detection.queued`.
    """
    from detector_core.intake import IntakeLimits, decode_image, read_bytes
    from detector_core.tiling import check_min_size

    limits = IntakeLimits(max_bytes=int(humanmade_settings.MAX_UPLOAD_BYTES))
    data = read_bytes(file, limits)
    decoded = decode_image(data, limits)
    check_min_size(decoded.width, decoded.height)
    sha256 = hashlib.sha256(data).hexdigest()
    if user is not None and user.is_authenticated:
        earlier = (
            Detection.objects.filter(submitted_by=user, sha256=sha256, content_type=None)
            .exclude(status=Detection.Status.FAILED)
            .first()
        )
        if earlier is not None:
            if earlier.status == Detection.Status.PENDING:
                enqueue(earlier)
            return earlier
    detection = Detection(
        sha256=sha256,
        submitted_by=user if user is not None and user.is_authenticated else None,
    )
    suffix = _FORMAT_SUFFIX.get(decoded.format, ".img")
    detection.upload.save(f"{sha256[:16]}{suffix}", ContentFile(data), save=False)
    detection.save()
    enqueue(detection)
    return detection


def submit_url(url: str, *, user: AbstractBaseUser | None = None) -> Detection:
    """Queue an http(s) URL; the worker fetches it safely (see detector_core.fetch).

    Raises `detector_core.errors.FetchError` (a message for people) at once for a URL the
    fetch policy refuses before connecting: malformed, not http(s), or a private address.
    """
    from detector_core.fetch import check_url

    check_url(url, get_detector().fetch_policy)
    detection = Detection.objects.create(
        source_url=url,
        submitted_by=user if user is not None and user.is_authenticated else None,
    )
    enqueue(detection)
    return detection


# --- scoring ------------------------------------------------------------------------------


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


UNFINISHED = (Detection.Status.PENDING, Detection.Status.SCORING)


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


# --- the sweeper --------------------------------------------------------------------------


@dataclass
class SweepReport:
    requeued: list[int] = field(default_factory=list)
    not_queued: list[int] = field(default_factory=list)  # the broker is still away
    failed: list[int] = field(default_factory=list)  # attempt limit reached


def sweep_stuck(older_than: float | None = None) -> SweepReport:
    """Queue again the Detections left `pending` or `scoring` for longer than `older_than`
    seconds (default `HUMANMADE["STUCK_AFTER"]`): a message lost with a killed worker or a
    broker that was down. A row started `TASK_MAX_ATTEMPTS` times fails with a message.

    A row that is in fact still queued gets a second message, which finds it done.
    """
    now = timezone.now()
    seconds = humanmade_settings.STUCK_AFTER if older_than is None else older_than
    cutoff = now - timedelta(seconds=float(seconds))
    limit = int(humanmade_settings.TASK_MAX_ATTEMPTS)
    report = SweepReport()
    stuck = Detection.objects.filter(status__in=UNFINISHED, updated_at__lt=cutoff).order_by("pk")
    for pk, attempts in stuck.values_list("pk", "attempts"):
        if attempts >= limit:
            mark_failed(pk, gave_up_message(attempts))
            report.failed.append(pk)
            continue
        # Claim the row (a concurrent sweep or worker may have moved it meanwhile).
        claimed = Detection.objects.filter(
            pk=pk, status__in=UNFINISHED, updated_at__lt=cutoff
        ).update(updated_at=now)
        if not claimed:
            continue
        (report.requeued if dispatch(pk) else report.not_queued).append(pk)
    return report


def read_image_bytes(detection: Detection) -> bytes:
    """The stored bytes of the image (upload, fetched URL or watched file); OSError if none."""
    from detector_core.intake import IntakeLimits, read_bytes

    limits = IntakeLimits(max_bytes=int(humanmade_settings.MAX_UPLOAD_BYTES))
    if detection.upload:
        with detection.upload.open("rb") as fh:
            return read_bytes(fh, limits)
    if detection.content_type_id:
        with _watched_storage(detection).open(detection.file_name, "rb") as fh:
            return read_bytes(fh, limits)
    raise FileNotFoundError("no stored image")


def _watched_storage(detection: Detection) -> Any:
    """The storage that holds a watched file: the object's own file's where the object still
    has that file (django-filer keeps each file on its public or its private storage), else
    the field's."""
    obj = detection.source_object()
    if obj is not None:
        field_file = getattr(obj, detection.field_name, None)
        if field_file and field_file.name == detection.file_name:
            return field_file.storage
    model = detection.content_type.model_class()
    if model is None:
        raise FileNotFoundError(detection.file_name)
    return model._meta.get_field(detection.field_name).storage


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
    data = _read_image(detection)
    sha256, result = _verdict_for(detection, data)
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


def _verdict_for(detection: Detection, data: bytes) -> tuple[str, dict[str, Any]]:
    """(sha256, the verdict's fields) from the current model; the same bytes are scored once
    per model version: an earlier Detection's result is taken when there is one."""
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
    from .matching import hash_fields

    hashes = hash_fields(data)
    if earlier is not None:
        return sha256, {
            **hashes,
            "probability": earlier.probability,
            "band": earlier.band,
            "decided_by": earlier.decided_by,
            "model_version": earlier.model_version,
            "evidence": {**earlier.evidence, "deduplicated_from": earlier.pk},
            "heatmap": earlier.heatmap.name,
        }
    verdict = detector.score(data, heatmap=bool(humanmade_settings.HEATMAP))
    evidence = verdict.to_dict()
    evidence.pop("heatmap", None)
    return sha256, {
        **hashes,
        "probability": verdict.ai_probability,
        "band": verdict.band.value,
        "decided_by": verdict.decided_by.value,
        "model_version": verdict.model_version,
        "evidence": evidence,
        "heatmap": _save_overlay(detection, data, verdict),
    }


# --- re-scoring with a new model ----------------------------------------------------------


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
        sha256, result = _verdict_for(detection, data)
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


# --- human review -------------------------------------------------------------------------


def record_review(
    detection: Detection, reviewer: AbstractBaseUser, decision: str, note: str = ""
) -> Detection:
    """Record a person's decision (who and when); a later decision replaces the earlier."""
    if decision not in Detection.Decision.values:
        raise ReviewRefused(f"Unknown decision {decision!r}.")
    with transaction.atomic():
        detection = Detection.objects.select_for_update().get(pk=detection.pk)
        if not detection.can_be_reviewed:
            raise ReviewRefused(
                f"Detection #{detection.pk} is {detection.get_status_display()}; only scored "
                "images can be decided."
            )
        detection.status = Detection.Status.REVIEWED
        detection.decision = decision
        detection.note = note
        detection.reviewer = reviewer
        detection.reviewed_at = timezone.now()
        detection.save()
        Review.objects.create(detection=detection, reviewer=reviewer, decision=decision, note=note)
    logger.info("detection %s decided %s by %s", detection.pk, decision, reviewer)
    return detection
