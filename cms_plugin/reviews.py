"""A person's decision on a scored Detection, and its history."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from .models import Detection, Review

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

logger = logging.getLogger("cms_plugin")


class ReviewRefused(Exception):
    """A decision cannot be recorded for this Detection in its current state."""


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
