"""Stability check (band flips between re-encoded copies) and the patch heatmap."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import encode, make_image
from PIL import Image

from detector_core.detector import Detector
from detector_core.heatmap import render_overlay
from detector_core.stability import stability_variants
from detector_core.verdict import Band, BandCutoffs


def _probabilities(tiny_weights, data):
    plain = Detector(tiny_weights, stability_check=False).score(data).ai_probability
    variants = dict(Detector(tiny_weights).score(data).variant_probabilities)
    return plain, variants


def test_variants_are_a_jpeg_resave_and_a_downscale():
    image = make_image(200, 100, seed=4)
    (n1, jpeg), (n2, scaled) = stability_variants(image)
    assert "JPEG" in n1 and jpeg.shape == (100, 200, 3)
    assert "resized" in n2 and scaled.shape == (75, 150, 3)
    assert not np.array_equal(jpeg, np.asarray(image))


def test_a_band_flip_between_copies_makes_the_verdict_uncertain(tiny_weights):
    data = encode(make_image(160, 128, seed=11))
    plain, variants = _probabilities(tiny_weights, data)
    assert len(variants) == 2
    other = max(variants.values(), key=lambda p: abs(p - plain))
    assert other != pytest.approx(plain, abs=1e-6)
    # Put the likely_ai cut-off between the image and its most different copy.
    cut = (plain + other) / 2
    cutoffs = BandCutoffs(human=min(cut, 0.999) / 2, ai=cut)
    verdict = Detector(tiny_weights, cutoffs=cutoffs).score(data)
    assert verdict.unstable
    assert verdict.band is Band.UNCERTAIN
    assert verdict.reasons and verdict.reasons[0].startswith("unstable:")
    assert verdict.to_dict()["unstable"] is True
    assert verdict.ai_probability == pytest.approx(plain, abs=1e-6)


def test_a_stable_verdict_keeps_its_band(tiny_weights):
    data = encode(make_image(160, 128, seed=11))
    always_ai = BandCutoffs(human=0.0, ai=1e-9)
    verdict = Detector(tiny_weights, cutoffs=always_ai).score(data)
    assert not verdict.unstable and verdict.band is Band.LIKELY_AI and verdict.reasons == ()


def test_heatmap_covers_scored_tiles_and_renders(tiny_weights):
    data = encode(make_image(300, 200, seed=2))
    full = Detector(tiny_weights, max_tiles=100).score(data, heatmap=True)
    hm = full.heatmap
    assert hm is not None and hm.cell_size == 4  # tiny test model: stride 4
    assert hm.probabilities.shape == (50, 75)
    assert np.isfinite(hm.probabilities).all()
    assert ((hm.probabilities >= 0) & (hm.probabilities <= 1)).all()
    # The mean of the calibrated cells tracks the image probability's direction.
    assert full.to_dict()["heatmap"]["cell_size"] == 4

    capped = Detector(tiny_weights, max_tiles=2).score(data, heatmap=True).heatmap
    assert np.isnan(capped.probabilities).any()  # unscored regions stay empty

    overlay = render_overlay(Image.open(io.BytesIO(data)), hm, full.summary())
    assert overlay.size == (300, 222)
    assert Detector(tiny_weights).score(data).heatmap is None


def test_cli_writes_a_heatmap_overlay(tiny_weights, tmp_path, capsys):
    from detector_core.cli import main

    src = tmp_path / "photo.png"
    src.write_bytes(encode(make_image(150, 100, seed=8)))
    out = tmp_path / "overlay.png"
    assert main(["score", str(src), "--weights", str(tiny_weights), "--heatmap", str(out)]) == 0
    with Image.open(out) as overlay:
        assert overlay.size == (150, 122)
    assert "AI-generated:" in capsys.readouterr().out
    folder = tmp_path / "many"
    code = main(
        [
            "score",
            str(src),
            str(src),
            "--weights",
            str(tiny_weights),
            "--heatmap",
            str(folder),
            "--no-progress",
        ]
    )
    assert code == 0 and (folder / "photo.png.heatmap.png").is_file()
