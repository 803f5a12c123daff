"""A reviewer's decision follows the picture: the same bytes, or a near-duplicate (resized,
re-compressed, lightly cropped, converted, re-rendered with a border) of an image a person
decided, shows that decision first, wherever the Detection is shown.

Near-duplicates are found by the perceptual hash stored on each Detection
(`detector_core.near_duplicate`): one query with exact matches on four indexed 16-bit parts
of the hash gives the candidates, and their full Hamming distance decides. A match never
crosses users who may not see each other's detections (see `_may_match`); what is shown of
another person's upload is "decided by a reviewer", never its name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.db.models import Q

from detector_core.near_duplicate import (
    MAX_INDEXED_DISTANCE,
    chunks,
    distance,
    from_signed,
    to_signed,
)

from .conf import humanmade_settings
from .models import REVIEW_PERMISSION, Detection

logger = logging.getLogger("cms_plugin")

VIEW_PERMISSION = "cms_plugin.view_detection"
_PART_OFFSET = 1 << 15  # a 16-bit part 0-65535 is stored minus this, to fit a smallint
PART_FIELDS = ("phash_0", "phash_1", "phash_2", "phash_3")


class Match:
    """How the decided image relates to this one."""

    THIS_IMAGE = "this_image"  # this very Detection was decided
    SAME_BYTES = "same_bytes"  # another Detection of identical bytes
    NEAR_DUPLICATE = "near_duplicate"  # another Detection whose hash is close enough


@dataclass(frozen=True)
class MatchedDecision:
    """A person's decision that applies to a Detection, and how it was matched."""

    decision: str  # Detection.Decision value
    reviewer: str  # the reviewer's username ("" when the account is gone)
    decided_at: datetime | None
    detection_id: int  # the Detection that was decided
    match: str  # a Match value
    distance: int  # bits of 64 that differ (0 for this image and the same bytes)
    # Another matched decision says the opposite: a person should look again.
    conflicting: bool = False

    @property
    def label(self) -> str:
        return str(Detection.Decision(self.decision).label)

    @property
    def tone(self) -> str:
        return "ai" if self.decision == Detection.Decision.AI_GENERATED else "human"

    @property
    def headline(self) -> str:
        """'Confirmed human-made by a reviewer': what every page shows first."""
        return f"Confirmed {self.label} by a reviewer"

    @property
    def how(self) -> str:
        """How the decided image was matched, without naming anyone's upload."""
        if self.match == Match.THIS_IMAGE:
            text = "decided on this image"
        elif self.match == Match.SAME_BYTES:
            text = "decided on an identical file sent earlier"
        else:
            text = (
                "decided on a near-duplicate of this picture (perceptual hashes differ in "
                f"{self.distance} of 64 bits)"
            )
        if self.decided_at is not None:
            text += f", on {self.decided_at:%Y-%m-%d}"
        if self.conflicting:
            text += "; another copy was decided the other way: please look again"
        return text

    def to_dict(self, *, name_reviewer: bool = True) -> dict[str, Any]:
        """The API's and the exports' `decision` object."""
        return {
            "value": self.decision,
            "label": self.label,
            "by": (self.reviewer or None) if name_reviewer else None,
            "decided_by_reviewer": True,
            "at": self.decided_at.isoformat() if self.decided_at else None,
            "detection": self.detection_id,
            "match": self.match,
            "distance": self.distance,
            "conflicting": self.conflicting,
        }


# --- the hash on the Detection ------------------------------------------------------------


def hash_fields(data: bytes) -> dict[str, int | None]:
    """The Detection's hash columns for these image bytes (all None if it cannot be hashed:
    matching then falls back to the same bytes)."""
    from detector_core.errors import HumanmadeError
    from detector_core.near_duplicate import hash_bytes

    try:
        value = hash_bytes(data)
    except (HumanmadeError, OSError, ValueError) as exc:
        logger.warning("no perceptual hash: %s", exc)
        value = None
    if value is None:  # also a flat or one-axis image: its hash would match strangers
        return {"phash": None, **dict.fromkeys(PART_FIELDS)}
    return fields_for_hash(value)


def fields_for_hash(value: int) -> dict[str, int]:
    """The column values of an unsigned 64-bit hash."""
    parts = chunks(value)
    return {
        "phash": to_signed(value),
        **{name: part - _PART_OFFSET for name, part in zip(PART_FIELDS, parts, strict=True)},
    }


def stored_hash(detection: Detection) -> int | None:
    return None if detection.phash is None else from_signed(detection.phash)


def max_distance() -> int | None:
    """The accepted Hamming distance (HUMANMADE["NEAR_DUPLICATE_DISTANCE"]), None: off."""
    value = humanmade_settings.NEAR_DUPLICATE_DISTANCE
    return None if value is None else max(0, min(int(value), MAX_INDEXED_DISTANCE))


def near_query(value: int) -> Q:
    """Rows sharing at least one 16-bit part with `value`: every hash within distance 3."""
    query = Q()
    for name, part in zip(PART_FIELDS, chunks(value), strict=True):
        query |= Q(**{name: part - _PART_OFFSET})
    return query


# --- who may be matched with whom ---------------------------------------------------------


def sees_all(user: Any) -> bool:
    """Desk users and reviewers see every Detection (the desk and the admin list them all)."""
    return bool(
        user is not None
        and user.is_active
        and (user.has_perm(VIEW_PERMISSION) or user.has_perm(REVIEW_PERMISSION))
    )


class _Scopes:
    """Who submitted what, read once per lookup."""

    def __init__(self) -> None:
        self._privileged: set[int] | None = None
        self._sees_all: dict[int, bool] = {}

    def privileged_ids(self) -> set[int]:
        if self._privileged is None:
            user_model = get_user_model()
            app_label, codename = REVIEW_PERMISSION.split(".")
            codenames = [codename, VIEW_PERMISSION.split(".")[1]]
            perms = Q(user_permissions__codename__in=codenames) | Q(
                groups__permissions__codename__in=codenames
            )
            self._privileged = set(
                user_model._default_manager.filter(is_active=True)
                .filter(Q(is_superuser=True) | perms)
                .values_list("pk", flat=True)
                .distinct()
            )
        return self._privileged

    def owner_sees_all(self, detection: Detection) -> bool:
        owner_id = detection.submitted_by_id
        if owner_id is None:
            return False
        if owner_id not in self._sees_all:
            self._sees_all[owner_id] = sees_all(detection.submitted_by)
        return self._sees_all[owner_id]

    def may_match(self, detection: Detection, candidate: Detection) -> bool:
        """Whether `detection`'s submitter may see `candidate`: a desk user or reviewer sees
        all; anyone sees their own; a watched CMS file (the CMS's shared library) sees other
        watched files and what staff sent; an anonymous upload sees nothing else."""
        if self.owner_sees_all(detection):
            return True
        owner_id = detection.submitted_by_id
        if owner_id is not None and candidate.submitted_by_id == owner_id:
            return True
        if detection.content_type_id:
            return bool(candidate.content_type_id) or (
                candidate.submitted_by_id in self.privileged_ids()
            )
        return False


# --- the lookup ---------------------------------------------------------------------------


def candidates_query(detections: list[Detection], *, near: bool = True) -> Any:
    """The decided Detections that share bytes or (with `near`) a 16-bit hash part with any
    of `detections`: one IN-list per part column, so a page of images costs four index
    scans, not one OR per image."""
    query = Q(sha256__in=sorted({d.sha256 for d in detections if d.sha256}))
    if near:
        hashes = [stored_hash(d) for d in detections if d.phash is not None]
        for i, name in enumerate(PART_FIELDS):
            values = sorted({chunks(h)[i] - _PART_OFFSET for h in hashes})
            if values:
                query |= Q(**{f"{name}__in": values})
    return (
        Detection.objects.filter(query, status=Detection.Status.REVIEWED)
        .exclude(decision="")
        .order_by()  # no sort: the closest match is chosen in Python
    )


def decision_for(detection: Detection) -> MatchedDecision | None:
    """The decision that applies to `detection`: its own, else the closest match's."""
    return decisions_for([detection]).get(detection.pk)


def decisions_for(detections: Iterable[Detection]) -> dict[int, MatchedDecision]:
    """{Detection id: its decision} for those that have one, in one query for them all."""
    detections = [d for d in detections if d.pk is not None]
    found: dict[int, MatchedDecision] = {}
    open_ = []
    for detection in detections:
        if detection.status == Detection.Status.REVIEWED and detection.decision:
            found[detection.pk] = _own(detection)
        elif detection.sha256 or detection.phash is not None:
            open_.append(detection)
    if not open_:
        return found
    limit = max_distance()
    rows = candidates_query(open_, near=limit is not None).values_list(*_CANDIDATE_COLUMNS)
    # Each image is compared only with the rows that share its bytes or a part of its hash.
    by_sha: dict[str, list[_Candidate]] = {}
    by_part: dict[tuple[str, int], list[_Candidate]] = {}
    for row in rows:
        candidate = _Candidate(*row)
        by_sha.setdefault(candidate.sha256, []).append(candidate)
        if candidate.phash is not None:
            for name, part in zip(PART_FIELDS, chunks(from_signed(candidate.phash)), strict=True):
                by_part.setdefault((name, part), []).append(candidate)
    scopes = _Scopes()
    for detection in open_:
        own_hash = stored_hash(detection)
        matches: dict[int, tuple[int, str, _Candidate]] = {}
        if detection.sha256:
            for candidate in by_sha.get(detection.sha256, []):
                matches[candidate.pk] = (0, Match.SAME_BYTES, candidate)
        if limit is not None and own_hash is not None:
            for name, part in zip(PART_FIELDS, chunks(own_hash), strict=True):
                for candidate in by_part.get((name, part), []):
                    if candidate.pk in matches:
                        continue
                    bits = distance(own_hash, from_signed(candidate.phash))
                    if bits <= limit:
                        matches[candidate.pk] = (bits, Match.NEAR_DUPLICATE, candidate)
        allowed = [
            m
            for m in matches.values()
            if m[2].pk != detection.pk and scopes.may_match(detection, m[2])
        ]
        if allowed:
            found[detection.pk] = _closest(allowed)
    return found


class _Candidate(NamedTuple):
    """A decided Detection as the lookup reads it: plain rows, no model instances (a page of
    50 images meets about a thousand candidates at a million rows)."""

    pk: int
    sha256: str
    phash: int | None
    decision: str
    reviewer_name: str | None
    reviewed_at: datetime | None
    submitted_by_id: int | None
    content_type_id: int | None


_CANDIDATE_COLUMNS = (
    "pk",
    "sha256",
    "phash",
    "decision",
    "reviewer__username",
    "reviewed_at",
    "submitted_by_id",
    "content_type_id",
)


def _own(detection: Detection) -> MatchedDecision:
    return MatchedDecision(
        decision=detection.decision,
        reviewer=_username(detection),
        decided_at=detection.reviewed_at,
        detection_id=detection.pk,
        match=Match.THIS_IMAGE,
        distance=0,
    )


def _closest(matches: list[tuple[int, str, _Candidate]]) -> MatchedDecision:
    """The closest match; among equals, the latest decision."""
    matches.sort(key=lambda m: (m[0], -(m[2].reviewed_at.timestamp() if m[2].reviewed_at else 0)))
    bits, kind, best = matches[0]
    return MatchedDecision(
        decision=best.decision,
        reviewer=best.reviewer_name or "",
        decided_at=best.reviewed_at,
        detection_id=best.pk,
        match=kind,
        distance=bits,
        conflicting=any(c.decision != best.decision for _, _, c in matches),
    )


def _username(detection: Detection) -> str:
    reviewer = detection.reviewer
    return reviewer.get_username() if reviewer is not None else ""
