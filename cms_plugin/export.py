"""Which images `manage.py humanmade_export` may write out, and with which label.

The rules of the feedback loop, in one place:

- Privacy: only the sources listed in `HUMANMADE["EXPORT_FIELDS"]` (watched fields, plus
  "api" for images sent through the REST API or by URL) are exported; an empty list exports
  nothing.
- A person's decision is the label (`label_origin` "reviewer"). When people decided
  differently on the same bytes the image has no clean label and is left out.
- With `COLLECT_CONFIDENT`, unreviewed images whose calibrated probability is at most 0.20
  (human) or at least 0.80 (ai) are added (`label_origin` "confident_score"), unless a
  person decided on the same bytes, the verdict was unstable, or the band says something
  other than the score did (provenance evidence or custom cut-offs moved it).
"""

from __future__ import annotations

import operator
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from functools import reduce
from typing import Any

from django.apps import apps
from django.db.models import Q

from .models import Detection

API_SOURCE = "api"
REVIEWER = "reviewer"
CONFIDENT_SCORE = "confident_score"
CONFIDENT_HUMAN = 0.20  # at or below: exported as human
CONFIDENT_AI = 0.80  # at or above: exported as ai

LABELS = {Detection.Decision.AI_GENERATED: "ai", Detection.Decision.HUMAN_MADE: "human"}
_BAND_OF_LABEL = {"human": Detection.Band.LIKELY_HUMAN, "ai": Detection.Band.LIKELY_AI}
_STRONG_AI = "strong_ai"

NOTHING_ALLOWED = (
    "Nothing may be exported: HUMANMADE['EXPORT_FIELDS'] is empty. List the sources whose "
    "images may leave this site for training, e.g. "
    'HUMANMADE = {..., "EXPORT_FIELDS": ["newsroom.Photo.image", "api"]} '
    '("app_label.Model.field" of watched fields; "api" for REST API and URL uploads).'
)


class ExportRefused(Exception):
    """The settings do not allow an export; the message says what to set."""


@dataclass(frozen=True)
class Candidate:
    detection: Detection
    label: str  # "ai" | "human"
    label_origin: str  # REVIEWER | CONFIDENT_SCORE


@dataclass
class Plan:
    candidates: list[Candidate] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def source_filter(entries: Any) -> Q:
    """A filter matching the Detections of the allowed sources; ExportRefused otherwise."""
    from django.contrib.contenttypes.models import ContentType

    from .signals import parse_watched

    if isinstance(entries, str) or not isinstance(entries, list | tuple):
        raise ExportRefused("HUMANMADE['EXPORT_FIELDS'] must be a list of strings.")
    if not entries:
        raise ExportRefused(NOTHING_ALLOWED)
    parts: list[Q] = []
    for entry in entries:
        if entry == API_SOURCE:
            # field_name too: a watched object's Detection keeps it even if its type is gone.
            parts.append(Q(content_type__isnull=True, field_name=""))
            continue
        try:
            app_label, model_name, field_name = parse_watched(entry)
            model = apps.get_model(app_label, model_name)
        except (ValueError, LookupError) as exc:
            raise ExportRefused(
                f"HUMANMADE['EXPORT_FIELDS'] entry {entry!r} is invalid ({exc}); "
                "run `manage.py check`."
            ) from exc
        content_type = ContentType.objects.get_for_model(model)
        parts.append(Q(content_type=content_type, field_name=field_name))
    return reduce(operator.or_, parts)


def confident_label(detection: Detection) -> str | None:
    """'human' / 'ai' when an unreviewed score is clean enough to train on, else None."""
    probability = detection.probability
    if probability is None:
        return None
    if probability <= CONFIDENT_HUMAN:
        label = "human"
    elif probability >= CONFIDENT_AI:
        label = "ai"
    else:
        return None
    evidence = detection.evidence if isinstance(detection.evidence, dict) else {}
    if evidence.get("unstable"):
        return None
    strong_ai = any(
        isinstance(item, dict) and item.get("strength") == _STRONG_AI
        for item in evidence.get("evidence") or ()
    )
    if label == "human" and strong_ai:
        return None  # provenance, not the score, set the band
    if detection.band != _BAND_OF_LABEL[label]:
        return None  # something other than the score decided the band
    return label


def plan_export(*, export_fields: Any, collect_confident: bool, since: date | None) -> Plan:
    """The Detections to export, in order (reviewers first, then oldest first)."""
    sources = source_filter(export_fields)
    plan = Plan()
    # Every decision on each image, whatever its source or date: a disagreement anywhere
    # makes the label unclean, and a decision anywhere beats a confident score.
    decided: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for pk, sha256, decision in (
        Detection.objects.filter(status=Detection.Status.REVIEWED, decision__in=list(LABELS))
        .exclude(sha256="")
        .values_list("pk", "sha256", "decision")
        .order_by("pk")
    ):
        decided[sha256][LABELS[decision]].append(pk)
    conflicting = {sha for sha, labels in decided.items() if len(labels) > 1}
    for sha256 in sorted(conflicting, key=lambda s: min(min(p) for p in decided[s].values())):
        detail = "; ".join(
            f"{label}: " + ", ".join(f"#{pk}" for pk in pks)
            for label, pks in sorted(decided[sha256].items())
        )
        plan.warnings.append(
            f"Image {sha256[:12]} skipped: reviewers disagree on the same bytes ({detail}); "
            "it is not a clean label."
        )

    # Clips (their evidence holds "media") are not still images to train on.
    reviewed = Detection.objects.filter(
        sources, status=Detection.Status.REVIEWED, decision__in=list(LABELS)
    ).exclude(evidence__has_key="media")
    if since is not None:
        reviewed = reviewed.filter(reviewed_at__date__gte=since)
    for detection in reviewed.select_related("content_type").order_by("pk"):
        if detection.sha256 not in conflicting:
            plan.candidates.append(Candidate(detection, LABELS[detection.decision], REVIEWER))

    if collect_confident:
        plan.candidates += _confident(sources, since, decided, plan.warnings)
    return plan


def _confident(
    sources: Q, since: date | None, decided: dict[str, Any], warnings: list[str]
) -> list[Candidate]:
    scored = Detection.objects.filter(
        sources,
        Q(probability__lte=CONFIDENT_HUMAN) | Q(probability__gte=CONFIDENT_AI),
        status__in=[Detection.Status.SCORED, Detection.Status.NEEDS_REVIEW],
        probability__isnull=False,
    ).exclude(evidence__has_key="media")
    if since is not None:
        scored = scored.filter(Q(scored_at__date__gte=since) | Q(rescored_at__date__gte=since))
    by_sha: dict[str, list[Candidate]] = defaultdict(list)
    for detection in scored.select_related("content_type").order_by("pk"):
        if detection.sha256 in decided:
            continue  # a person's decision wins
        label = confident_label(detection)
        if label is not None:
            by_sha[detection.sha256].append(Candidate(detection, label, CONFIDENT_SCORE))
    found: list[Candidate] = []
    for sha256, candidates in by_sha.items():
        if len({c.label for c in candidates}) > 1:  # e.g. two model versions disagree
            warnings.append(
                f"Image {sha256[:12]} skipped: its confident scores disagree ("
                + ", ".join(f"#{c.detection.pk} {c.label}" for c in candidates)
                + ")."
            )
            continue
        found += candidates
    return sorted(found, key=lambda c: c.detection.pk)
