"""The value every scoring call returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Band(StrEnum):
    LIKELY_HUMAN = "likely_human"
    UNCERTAIN = "uncertain"
    LIKELY_AI = "likely_ai"

    @property
    def label(self) -> str:
        return {"likely_human": "likely human", "uncertain": "uncertain", "likely_ai": "likely AI"}[
            self.value
        ]


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

    def summary(self) -> str:
        """The one line people read: 'AI-generated: 87% (likely AI)'."""
        return f"AI-generated: {round(self.ai_probability * 100)}% ({self.band.label})"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["band"] = self.band.value
        data["ai_probability"] = round(self.ai_probability, 6)
        data["elapsed_ms"] = round(self.elapsed_ms, 2)
        data["tile_probabilities"] = [round(p, 6) for p in self.tile_probabilities]
        data["summary"] = self.summary()
        return data
