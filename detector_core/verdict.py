"""The value every scoring call returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

__all__ = ["Band", "BandCutoffs", "DecidedBy", "ImageFacts", "Verdict"]

if TYPE_CHECKING:
    from .heatmap import Heatmap
    from .provenance import Evidence


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


class Band(StrEnum):
    LIKELY_HUMAN = "likely_human"
    UNCERTAIN = "uncertain"
    LIKELY_AI = "likely_ai"

    @property
    def label(self) -> str:
        return {"likely_human": "likely human", "uncertain": "uncertain", "likely_ai": "likely AI"}[
            self.value
        ]

    @property
    def title(self) -> str:
        """'Likely AI': the band at the start of a sentence."""
        return self.label[0].upper() + self.label[1:]


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@dataclass(frozen=True)
class BandCutoffs:
    """Probability cut-offs: below `human` is likely human, at or above `ai` is likely AI."""

    human: float = 0.20
    ai: float = 0.80

    def __post_init__(self) -> None:
        if not (0.0 <= self.human < self.ai <= 1.0):
            raise ValueError(
                f"band cut-offs must satisfy 0 <= human < ai <= 1, got {self.human}, {self.ai}"
            )

    def near(self, probability: float, margin: float | None) -> bool:
        """Whether `probability` lies within `margin` log-odds of a cut-off (None: always)."""
        if margin is None:
            return True
        z = _logit(probability)
        return any(abs(z - _logit(c)) < margin for c in (self.human, self.ai))

    def band(self, probability: float) -> Band:
        if probability >= self.ai:
            return Band.LIKELY_AI
        if probability < self.human:
            return Band.LIKELY_HUMAN
        return Band.UNCERTAIN


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    format: str
    sha256: str
    n_bytes: int


@dataclass(frozen=True)
class Verdict:
    """A calibrated, advisory judgement on one image. Never a final decision on its own."""

    ai_probability: float
    band: Band
    model_version: str
    image: ImageFacts
    elapsed_ms: float
    tiles_scored: int
    tile_probabilities: tuple[float, ...] = field(default=(), repr=False)
    # True when re-encoded or rescaled copies fall in another band; the band is then uncertain.
    unstable: bool = False
    variant_probabilities: tuple[tuple[str, float], ...] = field(default=(), repr=False)
    reasons: tuple[str, ...] = ()
    # What the file says about its origin (C2PA, XMP, EXIF, generator parameters, watermarks).
    evidence: tuple[Evidence, ...] = ()
    # Each expert's own calibrated probability ("trace", "clip"), before fusion.
    expert_probabilities: tuple[tuple[str, float], ...] = ()
    heatmap: Heatmap | None = field(default=None, repr=False, compare=False)
    # What set the band: the pixel score, strong provenance evidence, or the stability check.
    decided_by: DecidedBy = DecidedBy.PIXELS
    # The cut-offs the band was read against; the headline's numbers respect them.
    cutoffs: BandCutoffs = field(default_factory=BandCutoffs, repr=False)
    # What the image library said about the file while reading it (damaged EXIF, say), when
    # the Detector was asked to collect it (`library_notes=True`); nothing about the band.
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """The one line people read, never contradicting the band: 'AI-generated: 87% (likely
        AI)' when the pixels decided, else what did, e.g. 'Likely AI — the file's C2PA
        manifest declares AI-generated content, made with Adobe Firefly (pixels alone: 34%)'.
        """
        # The words are built on top of this data (detector_core.headline imports this
        # module, never the reverse at import time).
        from .headline import verdict_headline

        return verdict_headline(self)

    @property
    def cause(self) -> str:
        """Why the band is not the pixel band, in a clause; '' when the pixels decided."""
        from .headline import verdict_cause

        return verdict_cause(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the heatmap is included only when it was asked for."""
        data: dict[str, Any] = {
            "ai_probability": round(self.ai_probability, 6),
            "band": self.band.value,
            "summary": self.summary(),
            "decided_by": self.decided_by.value,
            "cutoffs": {"human": self.cutoffs.human, "ai": self.cutoffs.ai},
            "model_version": self.model_version,
            "image": {
                "width": self.image.width,
                "height": self.image.height,
                "format": self.image.format,
                "sha256": self.image.sha256,
                "n_bytes": self.image.n_bytes,
            },
            "elapsed_ms": round(self.elapsed_ms, 2),
            "tiles_scored": self.tiles_scored,
            "tile_probabilities": [round(p, 6) for p in self.tile_probabilities],
            "unstable": self.unstable,
            "variant_probabilities": {k: round(v, 6) for k, v in self.variant_probabilities},
            "reasons": list(self.reasons),
            "evidence": [e.to_dict() for e in self.evidence],
            "expert_probabilities": {k: round(v, 6) for k, v in self.expert_probabilities},
        }
        data["notes"] = list(self.notes)
        if self.heatmap is not None:
            data["heatmap"] = self.heatmap.to_dict()
        return data
