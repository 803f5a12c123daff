"""The network, calibration, metrics, augmentation and the evaluation report."""

from __future__ import annotations

import random
from itertools import product

import numpy as np
import pytest
import torch
from conftest import make_image
from PIL import Image

from detector_core.calibration import Calibration, expected_calibration_error, fit_calibration
from detector_core.experts.trace import LocalTraceNet, ModelConfig, neighbour_residual
from detector_core.training.data import (
    AugmentConfig,
    ManifestRow,
    augment,
    balanced_weights,
    colour_jitter,
    random_crop,
    screenshot,
)
from detector_core.training.evaluate import build_report, crossfit_ece, sample_rows
from detector_core.training.metrics import roc_auc, roc_curve, tpr_at_fpr
from detector_core.verdict import BandCutoffs


def test_network_is_fully_convolutional_with_a_patch_map():
    net = LocalTraceNet(ModelConfig()).eval()
    with torch.no_grad():
        patch = net.patch_logits(torch.rand(2, 3, 96, 160))
        logits = net(torch.rand(1, 3, 33, 47))
    assert patch.shape == (2, 1, 96 // 16, 160 // 16)
    assert logits.shape == (1,)


def test_neighbour_residual_is_zero_on_blocky_upsampled_images():
    small = torch.rand(1, 3, 8, 8)
    blocky = small.repeat_interleave(2, -2).repeat_interleave(2, -1)
    assert torch.allclose(neighbour_residual(blocky), torch.zeros_like(blocky))
    odd = neighbour_residual(torch.rand(1, 3, 9, 7))
    assert odd.shape == (1, 3, 9, 7)


def test_calibration_recovers_a_known_temperature_and_bias():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, 20000)
    truth = Calibration(temperature=2.5, bias=-0.7)
    targets = (rng.random(20000) < truth.probability(logits)).astype(float)
    fitted = fit_calibration(logits, targets)
    assert fitted.temperature == pytest.approx(2.5, rel=0.1)
    assert fitted.bias == pytest.approx(-0.7, abs=0.1)
    assert expected_calibration_error(fitted.probability(logits), targets) < 0.02
    over_confident = Calibration(0.2, 0.0).probability(logits)
    assert expected_calibration_error(over_confident, targets) > 0.1


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 2, 60)
    scores = rng.integers(0, 10, 60).astype(float)  # with ties
    pos, neg = scores[targets == 1], scores[targets == 0]
    pairs = [(p > n) + 0.5 * (p == n) for p, n in product(pos, neg)]
    assert roc_auc(targets, scores) == pytest.approx(np.mean(pairs))
    assert np.isnan(roc_auc(np.ones(3), np.arange(3.0)))


def test_roc_and_tpr_at_fpr():
    targets = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.4, 0.5, 0.8, 0.95])
    fpr, tpr = roc_curve(targets, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert tpr_at_fpr(targets, scores, 0.0) == 0.25
    assert tpr_at_fpr(targets, scores, 0.25) == 1.0


def test_augmentation_crops_to_size_and_never_stretches():
    cfg = AugmentConfig(crop=64)
    rng = random.Random(0)
    for seed in range(20):
        out = augment(make_image(150, 90, seed=seed), cfg, rng)
        assert out.size == (64, 64) and out.mode == "RGB"
    tiny = random_crop(make_image(20, 30), 64, rng)
    assert tiny.size == (64, 64)
    # Symmetric padding mirrors real pixels; nothing is resampled.
    arr = np.asarray(tiny)
    assert (arr[:30, :20] == np.asarray(make_image(20, 30))).all()


def test_screenshot_and_colour_views_change_pixels_but_keep_the_picture():
    image = Image.fromarray(
        np.tile(np.linspace(0, 255, 120, dtype=np.uint8)[None, :, None], (80, 1, 3))
    )
    rng = random.Random(3)
    shots = [screenshot(image, rng) for _ in range(12)]
    assert {s.size for s in shots} > {image.size} or len({s.size for s in shots}) > 1
    for shot in shots:
        assert shot.mode == "RGB"
        # Same picture: the left-to-right ramp survives any zoom and re-save.
        row = np.asarray(shot.convert("L"), dtype=float)[shot.height // 2]
        assert row[-3:].mean() - row[:3].mean() > 200
    jittered = colour_jitter(image, random.Random(5))
    again = colour_jitter(image, random.Random(5))
    assert np.array_equal(np.asarray(jittered), np.asarray(again))  # seeded by rng only
    assert not np.array_equal(np.asarray(jittered), np.asarray(image))
    # Every option on at once still yields a crop of the requested size.
    cfg = AugmentConfig(crop=48, p_colour=1.0, p_screenshot=1.0, p_low_jpeg=1.0, p_jpeg=1.0)
    assert augment(image, cfg, random.Random(0)).size == (48, 48)


def _row(label: str, source: str, content: str = "photo", generator: str = "") -> ManifestRow:
    return ManifestRow(f"{source}.png", "val", label, source, generator, content)


def test_balanced_weights_give_each_class_half_and_tame_big_sources():
    rows = [_row("ai", "big")] * 100 + [_row("ai", "small")] * 4 + [_row("human", "h")] * 10
    w = np.array(balanced_weights(rows))
    assert w[:104].sum() == pytest.approx(1.0) and w[104:].sum() == pytest.approx(1.0)
    big_share = w[:100].sum()
    assert 0.5 < big_share < 100 / 104  # less than its raw share


def test_report_on_synthetic_scores():
    rng = np.random.default_rng(2)
    rows, logits = [], []
    for i in range(200):
        label = "ai" if i % 2 else "human"
        rows.append(
            _row(
                label,
                f"src{i % 8}",
                "painting" if i % 4 == 0 else "photo",
                "GenA" if label == "ai" and i % 3 else "GenB",
            )
        )
        logits.append(rng.normal(2.0 if label == "ai" else -2.0, 1.5))
    report = build_report(rows, np.array(logits), Calibration(), BandCutoffs())
    assert 0.9 < report["auc"] <= 1.0
    assert set(report["per_generator"]) == {"GenA", "GenB"}
    assert report["per_content"]["painting"]["n_ai"] == 0
    assert "likely_ai_rate_on_human" in report["per_content"]["painting"]
    assert report["per_content_group"]["painting/drawing"]["n"] == 50
    assert report["ece_crossfitted_by_source"] is not None
    one_class = [r for r in rows if r.label == "ai"][:6]
    assert crossfit_ece(one_class, np.zeros(6)) is None


def test_sample_rows_is_stratified_and_deterministic():
    rows = [_row("ai", f"a{i}") for i in range(300)] + [_row("human", f"h{i}") for i in range(700)]
    sample = sample_rows(rows, 100, seed=3)
    assert sum(r.label == "ai" for r in sample) == 30
    assert sample == sample_rows(rows, 100, seed=3)
    assert sample_rows(rows, 0) == rows


def test_evaluation_plots_are_written_as_png(tmp_path):
    from PIL import Image

    from detector_core.training.evaluate import write_plots

    rows = [_row("ai" if i % 2 else "human", f"s{i % 5}") for i in range(60)]
    probs = np.linspace(0.01, 0.99, 60)
    paths = write_plots(rows, probs, tmp_path / "plots", "synthetic")
    assert [p.name for p in paths] == ["roc.png", "reliability.png"]
    for path in paths:
        with Image.open(path) as im:
            assert im.format == "PNG" and im.width > 200


def test_aligned_fakes_are_labelled_ai_cached_and_identical_twins_dropped(tmp_path, monkeypatch):
    from detector_core.training import twins
    from detector_core.training.train import add_aligned_fakes

    calls = []

    def fake_twins(arrays, model):
        calls.append(len(arrays))
        # A black image comes back unchanged (as the real decoder does); others change.
        return [a if not a.any() else (a // 2) for a in arrays]

    monkeypatch.setattr(twins.TwinAutoencoder, "from_dir", classmethod(lambda cls: object()))
    monkeypatch.setattr(twins, "make_twins", fake_twins)
    rows = [_row("human", "h1"), _row("human", "h2"), _row("ai", "a1")]
    arrays = [
        np.full((40, 40, 3), 200, np.uint8),
        np.zeros((40, 40, 3), np.uint8),
        np.full((40, 40, 3), 9, np.uint8),
    ]
    out_rows, out_arrays = add_aligned_fakes(rows, arrays, 5, seed=0, cache_dir=tmp_path)
    assert calls == [2]
    assert len(out_rows) == 4  # the black image's twin equals it and is dropped
    assert out_rows[-1].label == "ai" and out_rows[-1].source_group == "twins:taef2"
    assert (out_arrays[-1] == 100).all()
    add_aligned_fakes(rows, arrays, 5, seed=0, cache_dir=tmp_path)
    assert calls == [2]  # second run reads the cache


def test_robustness_transforms_keep_images_usable():
    from detector_core.training.evaluate import ROBUSTNESS

    image = make_image(256, 200, seed=3)
    sizes = {name: fn(image).size for name, fn in ROBUSTNESS.items()}
    assert sizes["as given"] == (256, 200)
    assert sizes["resize 0.5×"] == (128, 100) and sizes["resize 1.5×"] == (384, 300)
    assert sizes["centre crop (half of each side)"] == (128, 100)
    assert sizes["social chain (≤1080 px, JPEG q80)"] == (256, 200)  # never enlarged
    for name, fn in ROBUSTNESS.items():
        assert fn(image).mode == "RGB", name


def test_robustness_report_on_a_tiny_model(tiny_weights):
    from detector_core.training.evaluate import robustness_report
    from detector_core.weights import load_weights

    loaded = load_weights(tiny_weights)
    rows = [_row("ai" if i % 2 else "human", f"s{i}") for i in range(6)]
    arrays = [np.asarray(make_image(64, 48 if i % 3 else 80, seed=i)) for i in range(6)]
    report = robustness_report(loaded, rows, arrays, BandCutoffs(), progress=False)
    assert report["as given"]["n"] == 6
    assert report["resize 0.5×"]["n"] == 2  # 32×24 is below the minimum side and left out
    assert all(0.0 <= r["auc"] <= 1.0 for r in report.values() if r["n"] and not np.isnan(r["auc"]))


def test_robustness_verdicts_count_what_people_would_see(tiny_weights):
    from detector_core.detector import Detector
    from detector_core.training.evaluate import robustness_report
    from detector_core.weights import load_weights

    loaded = load_weights(tiny_weights)
    rows = [_row("ai" if i % 2 else "human", f"s{i}") for i in range(4)]
    arrays = [np.asarray(make_image(96, 96, seed=i)) for i in range(4)]

    def report(cutoffs: BandCutoffs) -> dict:
        detector = Detector(tiny_weights, cutoffs=cutoffs, provenance=False)
        return robustness_report(loaded, rows, arrays, cutoffs, False, detector)

    # Cut-offs that put every score in likely_ai: every human verdict is flagged, and the
    # stability copies cannot flip a band that covers everything.
    flagged = report(BandCutoffs(human=0.0, ai=1e-9))
    assert all(r["likely_ai_verdicts_on_human"] == 1.0 for r in flagged.values())
    assert all(r["likely_ai_rate_on_human"] == 1.0 for r in flagged.values())
    none = report(BandCutoffs(human=0.0, ai=1.0))
    assert all(r["likely_ai_verdicts_on_human"] == 0.0 for r in none.values())


@pytest.mark.parametrize(
    ("generator", "family"),
    [
        ("Midjourney (early 2023, ~v4/v5) [lowstep setting]", "Midjourney"),
        ("DALL-E 2", "OpenAI (DALL-E 2, GLIDE)"),
        ("GLIDE (OpenAI)", "OpenAI (DALL-E 2, GLIDE)"),
        ("AttnGAN (GAN)", "GAN (AttnGAN)"),
        ("Gemini 2.5 Flash Image (nano-banana), generation/edit output", "Gemini"),
        ("FLUX.1 schnell (Q4 GGUF)", "FLUX"),
        ('Stable Diffusion XL beta (DreamStudio "SDXL 2.2")', "SDXL"),
        ("Stable Diffusion v1.5", None),
    ],
)
def test_generator_families_for_leave_one_out(generator, family):
    from detector_core.training.loso import family_of

    assert family_of(generator) == family
