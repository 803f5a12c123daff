"""A verdict as pages show it, built from the engine's `Verdict.to_dict()` (which is what a
Detection stores): the headline, the band and its colour, what decided it, the reasons that
are not already evidence items, and each evidence item's strength in words.

The demo page, the checking desk and the admin all render `cms_plugin/_verdict.html` from it,
so a verdict reads the same wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detector_core.headline import (
    DecidedBy,
    cutoff_percent,
    percent_in_band,
    reasons_beyond_evidence,
)
from detector_core.provenance.evidence import Strength
from detector_core.verdict import Band, BandCutoffs

BAND_COLOURS = {
    Band.LIKELY_HUMAN: "human",
    Band.UNCERTAIN: "uncertain",
    Band.LIKELY_AI: "ai",
}


@dataclass(frozen=True)
class VerdictView:
    headline: str
    band: str
    band_label: str
    band_colour: str  # CSS class suffix: human, uncertain, ai (or none)
    percent: str  # the pixel probability, never across a cut-off from its band
    decided_by: str
    decided_by_label: str
    human_cutoff: str
    ai_cutoff: str
    reasons: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    model_version: str = ""
    image: dict[str, Any] = field(default_factory=dict)
    # A video or animated image: its figure is the frame timeline, not a heatmap.
    is_clip: bool = False


def band_colour(band: str) -> str:
    try:
        return BAND_COLOURS[Band(band)]
    except ValueError:
        return "none"


def evidence_items(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stored provenance items, each with its strength in words ("strong AI evidence")."""
    items = []
    for item in data.get("evidence") or []:
        if not isinstance(item, Mapping):
            continue
        try:
            words = Strength(item.get("strength")).label
        except ValueError:
            words = str(item.get("strength") or "evidence")
        items.append({**item, "strength_label": words})
    return items


def own_reasons(data: Mapping[str, Any]) -> list[str]:
    """The verdict's reasons that are not already listed as evidence items."""
    return reasons_beyond_evidence(data.get("reasons") or [], data.get("evidence") or [])


def cutoffs_of(data: Mapping[str, Any]) -> BandCutoffs:
    stored = data.get("cutoffs")
    try:
        return BandCutoffs(float(stored["human"]), float(stored["ai"]))
    except (TypeError, KeyError, ValueError):
        return BandCutoffs()


def verdict_view(data: Mapping[str, Any], headline: str | None = None) -> VerdictView | None:
    """The view of a `Verdict.to_dict()`; None when it holds no probability (not scored)."""
    try:
        probability = float(data["ai_probability"])
        band = Band(data["band"])
    except (KeyError, TypeError, ValueError):
        return None
    cutoffs = cutoffs_of(data)
    try:
        decided_by = DecidedBy(data.get("decided_by") or "pixels")
    except ValueError:
        decided_by = DecidedBy.PIXELS
    return VerdictView(
        headline=headline or str(data.get("summary") or ""),
        band=band.value,
        band_label=band.label,
        band_colour=BAND_COLOURS[band],
        percent=percent_in_band(probability, cutoffs),
        decided_by=decided_by.value,
        decided_by_label=decided_by.label,
        human_cutoff=f"{cutoff_percent(cutoffs.human, cutoffs)}%",
        ai_cutoff=f"{cutoff_percent(cutoffs.ai, cutoffs)}%",
        reasons=own_reasons(data),
        evidence=evidence_items(data),
        model_version=str(data.get("model_version") or ""),
        image=dict(data.get("image") or {}),
        is_clip="media" in data,
    )


def clipped(text: str, limit: int | None) -> str:
    """`text` cut to `limit` characters, whole on hover: keeps the admin queue within 1280 px."""
    from django.utils.html import format_html

    if limit is None or len(text) <= limit:
        return format_html("{}", text)
    return format_html('<span title="{}">{}…</span>', text, text[: limit - 1])
