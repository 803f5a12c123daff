"""New images in: an upload, a URL, a watched field's file; and Detections retired when the
watched object's file is replaced or the object deleted.

Each new Detection is queued once the transaction commits (`queueing.enqueue`).
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile
from django.db.models import QuerySet
from django.utils import timezone

from .conf import humanmade_settings
from .engine import get_detector
from .models import Detection
from .queueing import enqueue

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.db.models import Model

logger = logging.getLogger("cms_plugin")

_FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}


def queue_field(instance: Model, field_name: str) -> Detection | None:
    """A Detection for a watched object's file field, unless that very file was queued.

    A Detection of that very file still `pending` is returned, queued now if it never
    reached the broker (it was down when the Detection was created).
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
            if last.queued_at is None:  # never queued (the broker was down): queue it now
                enqueue(last)
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
    """Queue an uploaded file (Django UploadedFile, any binary file object, or bytes): an
    image, a video or an animated image.

    For custom views: raises `detector_core.errors.ImageError` (message for people) when the
    bytes are empty, too large, too small to judge or not a decodable image. A video is only
    recognised here; the worker decodes it (in its bounded child process), and a damaged
    one fails there with the decoder's message. The same user sending the same bytes again
    gets their earlier Detection back (queued now if it never reached the broker; one waiting
    in the queue is not queued twice). Scoring happens after commit; see `enqueue` for
    `detection.queued`.
    """
    from detector_core.intake import IntakeLimits, decode_image, read_bytes
    from detector_core.tiling import check_min_size
    from detector_core.video import MEDIA_SUFFIX, media_kind

    limits = IntakeLimits(max_bytes=int(humanmade_settings.MAX_UPLOAD_BYTES))
    data = read_bytes(file, limits)
    kind = media_kind(data)
    if kind is None:
        decoded = decode_image(data, limits)
        check_min_size(decoded.width, decoded.height)
        suffix = _FORMAT_SUFFIX.get(decoded.format, ".img")
    else:
        suffix = MEDIA_SUFFIX.get(kind[1], ".bin")
    sha256 = hashlib.sha256(data).hexdigest()
    if user is not None and user.is_authenticated:
        earlier = (
            Detection.objects.filter(submitted_by=user, sha256=sha256, content_type=None)
            .exclude(status=Detection.Status.FAILED)
            .first()
        )
        if earlier is not None:
            if earlier.status == Detection.Status.PENDING and earlier.queued_at is None:
                enqueue(earlier)
            return earlier
    detection = Detection(
        sha256=sha256,
        submitted_by=user if user is not None and user.is_authenticated else None,
    )
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
