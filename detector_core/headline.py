"""The one line people read about a verdict, worded from what decided its band.

A verdict's band is decided by the pixels, by strong provenance evidence in the file, or by
the stability check. The headline says which, so that a pixel score of 1% beside "likely AI"
reads as what it is (the file's metadata outweighed the pixels), not as a bug; and every
percentage it shows sits on the same side of the band cut-offs as the probability itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

# The verdict's data is below the words: this module imports it, never the reverse.
from .verdict import Band, BandCutoffs, DecidedBy

if TYPE_CHECKING:
    from .verdict import Verdict

__all__ = [
    "DecidedBy",
    "cutoff_decimals",
    "cutoff_percent",
    "headline",
    "instability_cause",
    "percent_in_band",
    "provenance_cause",
    "reasons_beyond_evidence",
    "verdict_cause",
    "verdict_headline",
]

CAUSE_LIMIT = 160


def cutoff_decimals(cutoffs: BandCutoffs) -> int:
    """The decimals (0-2) that show both cut-offs as percentages exactly: 0 for 0.20/0.80,
    1 for 0.974 (97.4 %). Scores are shown at the same precision, so that a score below a
    cut-off never reads as the cut-off itself (97 % beside "likely AI from 97 %")."""
    for decimals in range(2):
        if all(abs(round(c * 100, decimals) - c * 100) < 1e-9 for c in (cutoffs.human, cutoffs.ai)):
            return decimals
    return 2


def cutoff_percent(value: float, cutoffs: BandCutoffs) -> str:
    """A cut-off of `cutoffs` in percent, at their precision ("97.4", "20")."""
    return f"{value * 100:.{cutoff_decimals(cutoffs)}f}"


def percent_in_band(probability: float, cutoffs: BandCutoffs, decimals: int | None = None) -> str:
    """`probability` as a percentage that never lands across a band cut-off from it.

    Plain rounding shows 0.1998 as "20%", beside "likely human below 20%"; here it is 19%.
    `decimals` defaults to the cut-offs' own precision (`cutoff_decimals`). Shown between
    1% and 99% (0.1% and 99.9% at one decimal): a detector is never certain, and "100%"
    would read as proof.
    """
    if decimals is None:
        decimals = cutoff_decimals(cutoffs)
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
    'Likely AI — the file's C2PA manifest declares ... (pixels alone: 34%)'.

    The low band says what a low score means, no AI traces found: 'No sign of AI generation
    found: 3%'. It does not say "made by a person": images from generators the model never
    saw score low too (see weights/README.md, limits). The band's name stays likely_human.
    """
    pixels = percent_in_band(probability, cutoffs)
    if DecidedBy(decided_by) is DecidedBy.PIXELS or not cause:
        if Band(band) is Band.LIKELY_HUMAN:
            return f"No sign of AI generation found: {pixels}%"
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


def verdict_cause(verdict: Verdict) -> str:
    """Why the band is not the pixel band, in a clause; '' when the pixels decided."""
    if verdict.decided_by is DecidedBy.PROVENANCE:
        return provenance_cause([e.to_dict() for e in verdict.evidence])
    if verdict.decided_by is DecidedBy.INSTABILITY:
        own = verdict.cutoffs.band(verdict.ai_probability)
        flipped = [
            (n, p) for n, p in verdict.variant_probabilities if verdict.cutoffs.band(p) != own
        ]
        return instability_cause(verdict.ai_probability, flipped, verdict.cutoffs)
    return ""


def verdict_headline(verdict: Verdict) -> str:
    """The headline of a `Verdict` (what `Verdict.summary()` returns)."""
    return headline(
        verdict.ai_probability,
        verdict.band,
        verdict.decided_by,
        verdict.cutoffs,
        verdict_cause(verdict),
    )
