"""A release with two experts: saved and loaded whole, scored with both, explained by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clip_support import FakeEncoder, random_head
from conftest import encode, make_image

from detector_core import detector as detector_module
from detector_core.calibration import Calibration
from detector_core.detector import Detector
from detector_core.errors import WeightsError
from detector_core.experts.clip import ClipExpert
from detector_core.experts.trace import LocalTraceNet, ModelConfig
from detector_core.fusion import FusedExpert, Fusion
from detector_core.model_files import CLIP_SHA256
from detector_core.verdict import BandCutoffs
from detector_core.weights import ClipSpec, load_weights, save_weights

FUSION = Fusion(
    experts=(
        FusedExpert("clip", Calibration(2.0, 0.1), 1.2),
        FusedExpert("trace", Calibration(1.5, -0.2), 0.4),
    ),
    bias=-0.05,
)


@pytest.fixture
def fused_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = LocalTraceNet(ModelConfig(widths=(4, 8, 8), strides=(2, 2))).eval()
    path = tmp_path / "fused.safetensors"
    sha = save_weights(
        path,
        model,
        Calibration(),
        "fused-test",
        tile_size=64,
        cutoffs=BandCutoffs(0.2, 0.9),
        clip=ClipSpec(random_head(4), CLIP_SHA256, max_crops=2),
        fusion=FUSION,
    )
    (tmp_path / "README.md").write_text(f"- sha256 of `fused.safetensors`: `{sha}`\n")
    encoders: list[FakeEncoder] = []

    def fake_clip(spec, path=None, providers=None):
        encoders.append(FakeEncoder())
        return ClipExpert(encoders[-1], spec.head, spec.max_crops)  # type: ignore[arg-type]

    monkeypatch.setattr(detector_module, "load_clip_expert", fake_clip)
    return path, encoders


def test_round_trip_keeps_every_part(fused_weights) -> None:
    path, _ = fused_weights
    loaded = load_weights(path)
    assert loaded.experts == ("clip", "trace") and not loaded.single_expert
    assert loaded.fusion == FUSION and loaded.cutoffs == BandCutoffs(0.2, 0.9)
    assert loaded.clip is not None and loaded.clip.max_crops == 2
    x = np.random.default_rng(0).normal(size=(1, 768))
    np.testing.assert_allclose(
        loaded.clip.head.logits(x, x), random_head(4).logits(x, x), rtol=1e-5
    )
    raw = {"clip": 0.7, "trace": -2.0}
    assert loaded.probability(raw) == pytest.approx(1 / (1 + np.exp(-FUSION.logit(raw))))
    assert loaded.expert_calibration("trace") == Calibration(1.5, -0.2)


def test_verdict_reports_each_expert_and_the_fused_probability(fused_weights) -> None:
    path, encoders = fused_weights
    detector = Detector(path, stability_check=False, provenance=False)
    verdict = detector.score(encode(make_image(400, 300, seed=9)), heatmap=True)
    experts = dict(verdict.expert_probabilities)
    assert set(experts) == {"clip", "trace"}
    loaded = detector.loaded
    pixels = np.asarray(make_image(400, 300, seed=9))
    raw = detector.expert_logits(pixels)
    assert verdict.ai_probability == pytest.approx(loaded.probability(raw), rel=1e-6)
    assert experts == pytest.approx(loaded.expert_probabilities(raw))
    assert encoders[0].calls[0] == 2  # the release's crop cap
    assert verdict.heatmap is not None and verdict.heatmap.expert == loaded.driver(raw)
    assert verdict.to_dict()["expert_probabilities"].keys() == {"clip", "trace"}


def test_stability_copies_only_near_a_cut_off(fused_weights) -> None:
    path, _ = fused_weights
    data = encode(make_image(300, 300, seed=2))
    always = Detector(path, provenance=False, stability_margin=None).score(data)
    assert len(always.variant_probabilities) == 2
    never = Detector(path, provenance=False, stability_margin=1e-9).score(data)
    assert never.variant_probabilities == () and never.ai_probability == always.ai_probability


def test_wrong_clip_model_is_refused(tmp_path, fused_weights, monkeypatch) -> None:
    path, _ = fused_weights
    monkeypatch.undo()  # the real loader, on a file that is not the encoder
    other = tmp_path / "other.onnx"
    other.write_bytes(b"not the CLIP model")
    with pytest.raises(WeightsError, match="not the one these weights"):
        Detector(path, clip_model=other).load()
    with pytest.raises(WeightsError, match="humanmade setup"):
        Detector(path, clip_model=tmp_path / "missing.onnx").load()
