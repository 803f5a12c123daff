"""The clip rule: statistics of frame logits, its calibration, and the file beside the weights."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
from video_support import make_clip

from detector_core.clip_rule import (
    UNFITTED,
    ClipRule,
    frame_logits,
    load_rule,
    rule_path,
    save_rule,
)
from detector_core.detector import Detector
from detector_core.errors import WeightsError


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_each_statistic_reads_the_frame_logits():
    probs = [0.1, 0.5, 0.9, 0.99]
    z = frame_logits(probs)
    assert z[1] == pytest.approx(0.0)
    assert ClipRule("mean").probability(probs) == pytest.approx(_sigmoid(sum(z) / 4))
    assert ClipRule("median").probability(probs) == pytest.approx(_sigmoid((z[1] + z[2]) / 2))
    assert ClipRule("top3").probability(probs) == pytest.approx(_sigmoid(sum(z[1:]) / 3))


def test_the_calibration_is_applied_after_the_statistic():
    probs = [0.8, 0.6]
    mean = sum(frame_logits(probs)) / 2
    rule = ClipRule("mean", temperature=2.0, bias=-0.5, fitted_on="t")
    assert rule.probability(probs) == pytest.approx(_sigmoid(mean / 2.0 - 0.5))
    assert "calibrated on labelled clips" in rule.describe() and "t)" in rule.describe()
    assert "not fitted on video" in UNFITTED.describe()
    kept = ClipRule(fitted_on="40 clips; fitted calibrations did no better")
    assert kept.describe() == (
        "mean of frame logits, image calibration "
        "(checked on 40 clips; fitted calibrations did no better)"
    )


def test_the_mean_rule_does_not_rise_with_more_frames_of_the_same_clip():
    # The reason the maximum was never a candidate: more frames, more chances of one alarm.
    few = [0.2, 0.3, 0.9]
    many = few * 10
    assert ClipRule("mean").probability(many) == pytest.approx(ClipRule("mean").probability(few))


@pytest.mark.parametrize(
    "kwargs", [{"statistic": "max"}, {"temperature": 0.0}, {"bias": float("nan")}]
)
def test_a_nonsense_rule_is_refused(kwargs):
    with pytest.raises(ValueError):
        ClipRule(**kwargs)
    with pytest.raises(ValueError, match="no frame"):
        UNFITTED.probability([])


def test_the_rule_file_is_tied_to_the_weights_it_was_fitted_for(tmp_path):
    weights = tmp_path / "humanmade-9.9.9.safetensors"
    assert rule_path(weights).name == "humanmade-9.9.9.video.json"
    assert load_rule(weights, "a" * 64) is UNFITTED  # no file
    rule = ClipRule("top3", 1.5, 0.25, fitted_on="12 clips")
    save_rule(rule, weights, "a" * 64, rule_path(weights))
    assert load_rule(weights, "a" * 64) == rule
    assert load_rule(weights, "b" * 64) is UNFITTED  # fitted for other weights
    rule_path(weights).write_text("{not json")
    with pytest.raises(WeightsError, match="cannot be read"):
        load_rule(weights, "a" * 64)
    rule_path(weights).write_text(json.dumps({"weights_sha256": "a" * 64, "statistic": "max"}))
    with pytest.raises(WeightsError):
        load_rule(weights, "a" * 64)


def test_score_video_follows_the_rule_beside_the_weights(tiny_weights, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", seconds=2, fps=5, width=96, height=96)
    weights = tmp_path / tiny_weights.name
    weights.write_bytes(tiny_weights.read_bytes())
    unfitted = Detector(weights, provenance=False).score_video(clip)
    assert "not fitted on video" in unfitted.rule

    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    rule = ClipRule("median", temperature=0.5, bias=1.0, fitted_on="test clips")
    save_rule(rule, weights, digest, rule_path(weights))
    fitted = Detector(weights, provenance=False).score_video(clip)
    frames = [f.ai_probability for f in fitted.frames]
    assert frames == [f.ai_probability for f in unfitted.frames]
    assert fitted.ai_probability == pytest.approx(rule.probability(frames))
    assert fitted.ai_probability != pytest.approx(unfitted.ai_probability)
    assert fitted.rule == rule.describe() and fitted.to_dict()["rule"] == rule.describe()


def test_the_default_release_carries_the_rule_checked_on_its_clips():
    from detector_core.weights import DEFAULT_WEIGHTS

    digest = hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()
    rule = load_rule(DEFAULT_WEIGHTS, digest)
    assert rule_path(DEFAULT_WEIGHTS).is_file()
    assert rule is not UNFITTED and "train sources" in rule.fitted_on
    assert "checked on" in rule.describe() or "calibrated on labelled clips" in rule.describe()
