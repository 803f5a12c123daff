"""The one place where provenance evidence meets the pixel score."""

from __future__ import annotations

import math
from collections.abc import Sequence

from detector_core.headline import percent_in_band
from detector_core.verdict import Band, BandCutoffs

from .evidence import Evidence, Strength

__all__ = ["combine"]


def combine(
    pixel_probability: float,
    pixel_band: Band,
    evidence: Sequence[Evidence],
    cutoffs: BandCutoffs | None = None,
) -> tuple[Band, tuple[str, ...]]:
    """The verdict band once provenance is taken into account, and the reasons for it.

    The rules, all of them:

    1. Strong AI evidence — an intact C2PA manifest declaring AI generation, an IPTC AI
       digital source type, generator settings, a decoded invisible watermark (every item
       whose strength is `strong_ai`) — makes the band `likely_ai`, with one reason per item.
       The pixel score is not changed and stays shown beside it; when it disagreed, a reason
       says so.
    2. Anything else leaves the pixel band exactly as it is: weak hints (a tool name), context
       (camera EXIF, editing software, a manifest declaring a camera capture), manifests that
       failed validation, and a remote manifest that was not fetched.
    3. Nothing moves a verdict toward `likely_human`: rule 1 only ever raises the band, and no
       rule lowers it. Metadata is easy to forge or strip, so its absence, or a camera's name,
       proves nothing.

    Returns `(band, reasons)`; `reasons` is empty when the band is the pixel band unchanged.
    `cutoffs` (default 0.20/0.80) keep the pixel percentage quoted in a reason on the same
    side of a cut-off as the probability.
    """
    probability = float(pixel_probability)
    if not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
        raise ValueError(f"pixel_probability must lie in [0, 1], got {pixel_probability!r}")
    pixel_band = Band(pixel_band)
    strong = [e for e in evidence if Strength(e.strength) is Strength.STRONG_AI]
    if not strong:
        return pixel_band, ()
    reasons = [f"{e.summary} ({e.where})" for e in strong]
    if pixel_band is not Band.LIKELY_AI:
        reasons.append(
            f"The pixels alone scored {percent_in_band(probability, cutoffs or BandCutoffs())}% "
            f"({pixel_band.label}); "
            "the provenance evidence in the file outweighs that."
        )
    return Band.LIKELY_AI, tuple(reasons)
