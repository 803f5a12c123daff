"""One probability from several experts: each calibrated alone, then weighed and summed.

Each expert's raw logit is first calibrated on its own (so the verdict can say what each
expert thinks, as a probability), then the calibrated logits are weighed and summed. The
weights are fitted on out-of-fold predictions grouped by source (see `training.fuse`), never
on images an expert was trained on, so an expert that memorised its training set does not
get a weight it has not earned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .calibration import Calibration


@dataclass(frozen=True)
class FusedExpert:
    name: str
    calibration: Calibration
    weight: float


@dataclass(frozen=True)
class Fusion:
    experts: tuple[FusedExpert, ...]
    bias: float = 0.0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.experts)

    def calibrated_logits(self, raw: Mapping[str, float]) -> dict[str, float]:
        """Each expert's logit after its own calibration (log-odds it believes)."""
        return {
            e.name: float(raw[e.name] / e.calibration.temperature + e.calibration.bias)
            for e in self.experts
        }

    def expert_probabilities(self, raw: Mapping[str, float]) -> dict[str, float]:
        return {
            name: float(1.0 / (1.0 + np.exp(-z))) for name, z in self.calibrated_logits(raw).items()
        }

    def contributions(self, raw: Mapping[str, float]) -> dict[str, float]:
        """How much each expert adds to the fused logit."""
        weights = {e.name: e.weight for e in self.experts}
        return {n: weights[n] * z for n, z in self.calibrated_logits(raw).items()}

    def logit(self, raw: Mapping[str, float]) -> float:
        """The fused logit (before the release's final calibration)."""
        return float(self.bias + sum(self.contributions(raw).values()))

    def driver(self, raw: Mapping[str, float]) -> str:
        """The expert that moves the fused logit most: the one whose patch map to show."""
        contributions = self.contributions(raw)
        fused = self.logit(raw)
        return max(contributions, key=lambda n: contributions[n] * np.sign(fused or 1.0))

    def to_json(self) -> str:
        return json.dumps(
            {
                "bias": self.bias,
                "experts": [
                    {
                        "name": e.name,
                        "weight": e.weight,
                        "temperature": e.calibration.temperature,
                        "calibration_bias": e.calibration.bias,
                    }
                    for e in self.experts
                ],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Fusion:
        raw = json.loads(text)
        experts = tuple(
            FusedExpert(
                name=str(e["name"]),
                calibration=Calibration(float(e["temperature"]), float(e["calibration_bias"])),
                weight=float(e["weight"]),
            )
            for e in raw["experts"]
        )
        if not experts:
            raise ValueError("fusion names no experts")
        return cls(experts=experts, bias=float(raw["bias"]))

    @classmethod
    def single(cls, name: str) -> Fusion:
        """One expert, passed through unchanged: how a single-network release is read."""
        return cls(experts=(FusedExpert(name, Calibration(), 1.0),), bias=0.0)
