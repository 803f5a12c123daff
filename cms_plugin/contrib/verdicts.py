"""The verdict of a watched CMS object, as its screens show it (badge, panel, queue)."""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import Model, QuerySet

from ..admin import ADVISORY
from ..matching import Match, decision_for
from ..models import Detection


def detections_of(obj: Model) -> QuerySet[Detection]:
    """Every Detection of `obj`'s watched files, newest first."""
    return Detection.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
    ).order_by("-pk")


def latest_detection(obj: Model | None) -> Detection | None:
    """The Detection of `obj`'s current file: the newest that has not gone stale."""
    if obj is None or obj.pk is None:
        return None
    return detections_of(obj).exclude(status=Detection.Status.STALE).first()


def needs_review(models: list[type[Model]]) -> QuerySet[Detection]:
    """The review queue of these models' objects, oldest first."""
    content_types = ContentType.objects.get_for_models(*models).values()
    return (
        Detection.objects.filter(
            status=Detection.Status.NEEDS_REVIEW, content_type__in=list(content_types)
        )
        .select_related("content_type")
        .order_by("created_at", "pk")
    )


def badge(detection: Detection | None) -> dict[str, Any]:
    """What the badge says ("likely AI 93%", "being checked", ...) and its colour class."""
    if detection is None:
        return {"text": "", "tone": ""}
    status = Detection.Status
    decided = decision_for(detection)
    if decided is not None:
        # A person's decision on this image, or on the same picture sent before, comes first.
        text = f"confirmed {decided.label}"
        if decided.match != Match.THIS_IMAGE:
            text += " (same picture decided before)"
        return {"text": text, "tone": decided.tone, "title": decided.how}
    if detection.status in (status.PENDING, status.SCORING):
        return {"text": "being checked", "tone": "pending"}
    if detection.status == status.FAILED:
        return {"text": "could not be checked", "tone": "failed"}
    if detection.probability is None:
        return {"text": detection.get_status_display(), "tone": "pending"}
    tone = {"likely_ai": "ai", "likely_human": "human"}.get(detection.band, "uncertain")
    text = f"{detection.get_band_display()} {detection.percent}%"
    if detection.status == status.NEEDS_REVIEW:
        text += " · needs review"
    return {"text": text, "tone": tone}


def panel_context(detection: Detection | None) -> dict[str, Any]:
    """The verdict panel: verdict, reasons, provenance evidence, heatmap, decision."""
    evidence = (detection.evidence or {}) if detection is not None else {}
    decided = decision_for(detection) if detection is not None else None
    return {
        "detection": detection,
        "badge": badge(detection),
        # Another image's decision (this image's own is shown with the review history).
        "matched_decision": decided if decided and decided.match != Match.THIS_IMAGE else None,
        "advisory": ADVISORY,
        "reasons": evidence.get("reasons", []),
        "evidence_items": evidence.get("evidence", []),
        "decisions": Detection.Decision.choices,
    }
