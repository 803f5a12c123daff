"""Stability check (band flips between re-encoded copies) and the patch heatmap."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import encode, make_image
from PIL import Image

from detector_core.detector import Detector
from detector_core.heatmap import FIGURE_WIDTH, Heatmap, render_heatmap_figure
from detector_core.stability import stability_variants
from detector_core.verdict import Band, BandCutoffs


def _probabilities(tiny_weights, data):
    plain = Detector(tiny_weights, stability_check=False).score(data).ai_probability
    variants = dict(Detector(tiny_weights, stability_margin=None).score(data).variant_probabilities)
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
    # Every image re-checked: the cut-off put here may lie outside the default margin.
    verdict = Detector(tiny_weights, cutoffs=cutoffs, stability_margin=None).score(data)
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

    figure = render_heatmap_figure(Image.open(io.BytesIO(data)), hm, full.summary())
    assert figure.width == FIGURE_WIDTH
    assert Detector(tiny_weights).score(data).heatmap is None


def test_cli_writes_a_heatmap_overlay(tiny_weights, tmp_path, capsys):
    from detector_core.cli import main

    src = tmp_path / "photo.png"
    src.write_bytes(encode(make_image(150, 100, seed=8)))
    out = tmp_path / "overlay.png"
    assert main(["score", str(src), "--weights", str(tiny_weights), "--heatmap", str(out)]) == 0
    with Image.open(out) as figure:
        assert figure.width == FIGURE_WIDTH
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


def _known_map() -> Heatmap:
    """Left half scored 0, right half 1, bottom row unscored; 4 px cells over 64x48."""
    grid = np.zeros((12, 16))
    grid[:, 8:] = 1.0
    grid[-1, :] = np.nan
    grid.setflags(write=False)
    return Heatmap(grid, 4)


def test_heatmap_figure_shows_image_and_map_side_by_side_in_a_safe_colour_map():
    from matplotlib import colormaps

    red = Image.new("RGB", (64, 48), (220, 20, 30))  # a red subject must not look "hot"
    figure = np.asarray(render_heatmap_figure(red, _known_map(), "AI-generated: 50% (uncertain)"))
    assert figure.shape[1] == FIGURE_WIDTH
    panel = (FIGURE_WIDTH - 36) // 2
    scale = panel / 64
    top, right = 12 + 24, 24 + panel
    # The original, as it is, on the left.
    assert tuple(figure[top + 10, 12 + 10]) == pytest.approx((220, 20, 30), abs=3)
    # The map on the right: cividis ends blended over the image's grey; no red anywhere.
    grey = float(np.asarray(red.convert("L"))[0, 0])
    low, high = (np.array(colormaps["cividis"](v)[:3]) * 255 for v in (0.0, 1.0))
    y = top + round(10 * scale)
    for x, colour in ((right + round(10 * scale), low), (right + round(50 * scale), high)):
        expected = 0.8 * colour + 0.2 * grey
        assert np.abs(figure[y, x].astype(float) - expected).max() <= 3, (x, figure[y, x])
    map_pixels = figure[top : top + round(44 * scale), right : right + panel].astype(int)
    assert not ((map_pixels[..., 0] > 150) & (map_pixels[..., 1] < 80)).any()
    # Unscored cells show the greyscale image only.
    unscored = figure[top + round(46 * scale), right + round(20 * scale)].astype(float)
    assert np.abs(unscored - grey).max() <= 3


def test_heatmap_colour_scale_is_perceptually_ordered_and_labelled():
    from detector_core.heatmap import _lut

    lut = _lut().astype(float)
    lightness = 0.2126 * lut[:, 0] + 0.7152 * lut[:, 1] + 0.0722 * lut[:, 2]
    assert (np.diff(lightness) >= 0).all() and lightness[-1] - lightness[0] > 150  # in grey too
    small = Image.new("RGB", (256, 256), "white")
    caption = "Likely AI — the file's C2PA manifest declares AI-generated content, made with " * 2
    figure = render_heatmap_figure(small, _known_map(), caption)
    pixels = np.asarray(figure.convert("L"))
    # The caption wraps instead of being clipped: ink reaches the last lines, not the edge.
    caption_rows = pixels[-70:]
    assert (caption_rows < 128).any()
    assert (pixels[:, -6:] > 250).all()  # nothing drawn past the right margin


def test_the_colour_scale_labels_never_overlap_and_say_what_share_was_scored():
    from detector_core.heatmap import tick_labels
    from detector_core.verdict import BandCutoffs

    release = BandCutoffs(human=0.2, ai=0.974)
    labels = tick_labels(release, 400, 382, lambda text: 9.0 * len(text))
    assert [text for text, *_ in labels] == ["0%", "100%", "20.0%", "97.4%"]
    for row in (0, 1):
        spans = sorted((x, x + 9.0 * len(t)) for t, _, x, r in labels if r == row)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    rows = {text: row for text, _, _, row in labels}
    assert rows["100%"] != rows["97.4%"]
    assert {row for *_, row in tick_labels(BandCutoffs(), 400, 382, lambda t: 9.0 * len(t))} == {0}
    ends = tick_labels(BandCutoffs(0.0, 1.0), 400, 382, lambda t: 9.0 * len(t))
    assert [text for text, *_ in ends] == ["0%", "100%"]  # a cut-off at an end: drawn once

    hm = _known_map()  # its last row is unscored
    assert hm.scored_share == pytest.approx(1 - 1 / hm.probabilities.shape[0])
    figure = render_heatmap_figure(Image.new("RGB", (64, 48), "white"), hm, "caption", release)
    assert figure.width == FIGURE_WIDTH
