"""Fusion of the experts' logits: per-expert calibration, weights, and the driving expert."""

from __future__ import annotations

import numpy as np
import pytest

from detector_core.calibration import Calibration
from detector_core.fusion import FusedExpert, Fusion


def two_experts() -> Fusion:
    return Fusion(
        experts=(
            FusedExpert("trace", Calibration(temperature=2.0, bias=-0.5), weight=0.5),
            FusedExpert("clip", Calibration(temperature=1.0, bias=0.25), weight=1.5),
        ),
        bias=0.1,
    )


def test_logit_is_the_weighted_sum_of_calibrated_logits() -> None:
    fusion = two_experts()
    raw = {"trace": 3.0, "clip": -1.0}
    assert fusion.calibrated_logits(raw) == {"trace": 1.0, "clip": -0.75}
    assert fusion.logit(raw) == pytest.approx(0.1 + 0.5 * 1.0 + 1.5 * -0.75)
    probs = fusion.expert_probabilities(raw)
    assert probs["trace"] == pytest.approx(1 / (1 + np.exp(-1.0)))


def test_driver_is_the_expert_pushing_the_verdict_its_way() -> None:
    fusion = two_experts()
    assert fusion.driver({"trace": 8.0, "clip": 0.0}) == "trace"
    assert fusion.driver({"trace": 0.0, "clip": 4.0}) == "clip"
    # Fused logit negative: the expert pulling toward human drives it.
    assert fusion.driver({"trace": 1.0, "clip": -5.0}) == "clip"


def test_json_round_trip_and_refusals() -> None:
    fusion = two_experts()
    assert Fusion.from_json(fusion.to_json()) == fusion
    with pytest.raises(ValueError):
        Fusion.from_json('{"bias": 0, "experts": []}')
    single = Fusion.single("trace")
    assert single.logit({"trace": 1.7}) == pytest.approx(1.7)
