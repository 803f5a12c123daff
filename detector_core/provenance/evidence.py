"""The value every provenance reader returns: one `Evidence` item per thing found."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Evidence", "Strength", "clip_text", "json_ready"]

# Caps on what an Evidence item may carry, so hostile metadata cannot bloat a verdict.
MAX_TEXT = 500  # characters per string in `details`
MAX_ITEMS = 32  # entries per list or dict in `details`
MAX_DEPTH = 4  # nesting of `details`
MAX_SUMMARY = 400  # characters of `summary`


class Strength(StrEnum):
    """How much an item says about the image's origin."""

    STRONG_AI = "strong_ai"  # a precise, deliberate marker of AI generation; moves the verdict
    WEAK_AI = "weak_ai"  # points at AI tooling but proves little; shown, never moves the verdict
    CONTEXT = "context"  # facts for a reviewer (camera, editing software); never proof of anything
    INVALID = "invalid"  # provenance that failed validation (tampered, unreadable); not trusted

    @property
    def label(self) -> str:
        return {
            "strong_ai": "strong AI evidence",
            "weak_ai": "weak AI hint",
            "context": "context",
            "invalid": "invalid, not trusted",
        }[self.value]


@dataclass(frozen=True)
class Evidence:
    """One provenance finding: what kind, what was found, where, and how strong.

    `details` is JSON-ready (strings clipped, lists and dicts capped) whatever a reader put in.
    """

    kind: str  # "c2pa", "xmp_digital_source_type", "generator_parameters", "watermark", ...
    summary: str  # one sentence for people
    where: str  # "PNG tEXt 'parameters'", "JPEG APP1 XMP", "C2PA active manifest", ...
    strength: Strength
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strength", Strength(self.strength))
        object.__setattr__(self, "summary", clip_text(str(self.summary), MAX_SUMMARY))
        object.__setattr__(self, "where", clip_text(str(self.where), 120))
        cleaned = json_ready(dict(self.details))
        object.__setattr__(self, "details", cleaned if isinstance(cleaned, dict) else {})

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "summary": self.summary,
            "where": self.where,
            "strength": self.strength.value,
            "details": copy.deepcopy(self.details),
        }


def clip_text(text: str, limit: int = MAX_TEXT) -> str:
    """`text` without control characters, cut to `limit` characters with an ellipsis."""
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def json_ready(value: Any, depth: int = 0) -> Any:
    """A JSON-serialisable, size-capped copy of `value` (unknown objects become short strings)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clip_text(value)
    if isinstance(value, bytes | bytearray):
        return clip_text(bytes(value[:MAX_TEXT]).decode("utf-8", errors="replace"))
    if depth >= MAX_DEPTH:
        return clip_text(repr(value), 80)
    if isinstance(value, dict):
        return {
            clip_text(str(k), 80): json_ready(v, depth + 1)
            for k, v in list(value.items())[:MAX_ITEMS]
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    if hasattr(value, "item"):  # numpy scalars
        try:
            return json_ready(value.item(), depth)
        except Exception:
            pass
    return clip_text(str(value), 80)
