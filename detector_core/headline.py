"""The one line people read about a verdict, worded from what decided its band.

A verdict's band is decided by the pixels, by strong provenance evidence in the file, or by
the stability check. The headline says which, so that a pixel score of 1% beside "likely AI"
reads as what it is (the file's metadata outweighed the pixels), not as a bug; and every
percentage it shows sits on the same side of the band cut-offs as the probability itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .verdict import Band, BandCutoffs

__all__ = [
    "DecidedBy",
    "headline",
    "instability_cause",
    "percent_in_band",
    "provenance_cause",
    "reasons_beyond_evidence",
]

CAUSE_LIMIT = 160


class DecidedBy(StrEnum):
    """What set a verdict's band."""

    PIXELS = "pixels"  # the calibrated pixel score, as it is
    PROVENANCE = "provenance"  # strong AI evidence in the file raised the band to likely AI
    INSTABILITY = "instability"  # a re-saved or resized copy fell in another band: uncertain

    @property
    def label(self) -> str:
        return {
            "pixels": "pixel score",
            "provenance": "provenance in the file",
            "instability": "unstable score",
        }[self.value]


def percent_in_band(probability: float, cutoffs: BandCutoffs, decimals: int = 0) -> str:
    """`probability` as a percentage that never lands across a band cut-off from it.

    Plain rounding shows 0.1998 as "20%", beside "likely human below 20%"; here it is 19%.
    Shown between 1% and 99% (at `decimals` precision): a detector is never certain, and
    "100%" would read as proof.
    """
    scale = 10**decimals
    value = probability * 100 * scale
    shown = round(value)
    band = cutoffs.band(probability)
    if cutoffs.band(shown / scale / 100) is not band:
        shown = math.floor(value) if shown > value else math.ceil(value)
    shown = min(100 * scale - 1, max(1, shown))
    return f"{shown / scale:.{decimals}f}"


def headline(
    probability: float,
    band: Band,
    decided_by: DecidedBy,
    cutoffs: BandCutoffs,
    cause: str = "",
) -> str:
    """'AI-generated: 87% (likely AI)' when the pixels decided, else the band and why:
    'Likely AI — the file's C2PA manifest declares ... (pixels alone: 34%)'."""
    pixels = percent_in_band(probability, cutoffs)
    if DecidedBy(decided_by) is DecidedBy.PIXELS or not cause:
        return f"AI-generated: {pixels}% ({band.label})"
    if DecidedBy(decided_by) is DecidedBy.INSTABILITY:
        return f"{band.title} — {cause}"
    return f"{band.title} — {cause} (pixels alone: {pixels}%)"


def instability_cause(
    probability: float, flipped: Iterable[tuple[str, float]], cutoffs: BandCutoffs
) -> str:
    """'the score moves between bands: 72% as given, 85% re-saved as JPEG q90'."""
    copies = ", ".join(f"{percent_in_band(p, cutoffs)}% {name}" for name, p in flipped)
    if not copies:
        return ""
    given = percent_in_band(probability, cutoffs)
    return f"the score moves between bands: {given}% as given, {copies}"


def provenance_cause(evidence: Sequence[Mapping[str, Any]]) -> str:
    """A short clause for the first strong AI item of `to_dict()`-shaped evidence, or ''."""
    strong = [e for e in evidence if e.get("strength") == "strong_ai"]
    if not strong:
        return ""
    item = strong[0]
    kind, details = item.get("kind", ""), item.get("details") or {}
    if kind == "c2pa":
        tools = [
            a["software_agent"]
            for a in details.get("actions") or ()
            if isinstance(a, Mapping) and a.get("software_agent")
        ]
        maker = ", ".join(dict.fromkeys(tools)) or details.get("claim_generator") or ""
        text = "the file's C2PA manifest declares AI-generated content"
        return _clip(f"{text}, made with {maker}" if maker else text)
    if kind == "xmp_digital_source_type":
        code = details.get("digital_source_type") or "an AI source type"
        return _clip(f"the file's XMP metadata declares it AI-generated ({code})")
    if kind == "generator_parameters":
        where = " hidden in its pixels" if details.get("stealth_signature") else ""
        tool = details.get("generator") or "an image generator"
        return _clip(f"the file holds generation settings{where} written by {tool}")
    if kind == "watermark":
        writer = details.get("writer") or "an image generator"
        return _clip(f"an invisible watermark of the {writer} is in its pixels")
    return _clip(str(item.get("summary") or "the file's provenance declares it AI-generated"))


def reasons_beyond_evidence(
    reasons: Iterable[str], evidence: Iterable[Mapping[str, Any]]
) -> list[str]:
    """`reasons` less those that repeat an evidence item ("summary (where)") word for word:
    the engine names strong evidence among the reasons, and a reader should meet it once."""
    repeats = {f"{e.get('summary')} ({e.get('where')})" for e in evidence if isinstance(e, Mapping)}
    return [str(r) for r in reasons if r and str(r) not in repeats]


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= CAUSE_LIMIT else text[: CAUSE_LIMIT - 1].rstrip() + "…"
