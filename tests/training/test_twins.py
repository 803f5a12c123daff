"""AI-decoded twins (issue #3): the taef2 autoencoder, its loading, and the twin helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import needs_shared
from PIL import Image, ImageDraw

from detector_core.training.twins import (
    DECODER_FILE,
    ENCODER_FILE,
    TwinAutoencoder,
    default_generator_dir,
    main,
    make_twin,
    make_twins,
    psnr,
)

GENERATORS = default_generator_dir()
shared = needs_shared(GENERATORS)

# Measured with the real weights: 27.6 dB (128x96) and 26.5 dB (100x70) on `smooth_image`;
# 2 or 32 GroupNorm groups in the gates give 18-23 dB, a broken load far less.
MIN_PSNR = 24.0


def smooth_image(width: int, height: int) -> Image.Image:
    """Colour gradients with a yellow ellipse and a blue rectangle on top."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 255 * x / (width - 1)
    green = 255 * y / (height - 1)
    blue = 255 * (0.5 + 0.5 * np.sin((x + y) / max(width, height) * np.pi))
    image = Image.fromarray(np.stack([red, green, blue], -1).round().astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse([width * 0.15, height * 0.2, width * 0.5, height * 0.7], fill=(230, 200, 40))
    draw.rectangle([width * 0.55, height * 0.3, width * 0.9, height * 0.85], fill=(40, 60, 170))
    return image


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small convolutions gain nothing from threads, and on a busy CPU they lose seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def random_model() -> TwinAutoencoder:
    torch.manual_seed(0)
    return TwinAutoencoder().eval().requires_grad_(False)


@pytest.fixture(scope="module")
def real_model() -> TwinAutoencoder:
    return TwinAutoencoder.from_files(GENERATORS / ENCODER_FILE, GENERATORS / DECODER_FILE)


# --------------------------------------------------------------------------- no shared files


def test_architecture_has_the_keys_of_the_taef2_files(random_model):
    enc = random_model.encoder.state_dict()
    dec = random_model.decoder.state_dict()
    assert len(enc) == 79 and len(dec) == 79
    assert enc["0.weight"].shape == (64, 3, 3, 3)
    assert enc["2.weight"].shape == (64, 64, 3, 3) and "2.bias" not in enc
    assert enc["14.weight"].shape == (32, 64, 3, 3)
    assert {k.split(".")[0] for k in enc if ".pool." in k} == {"11", "12", "13"}
    assert enc["11.pool.0.weight"].shape == (256, 64, 1, 1)
    assert enc["11.pool.1.weight"].shape == (256,)
    assert enc["11.pool.3.weight"].shape == (64, 256, 1, 1)
    assert dec["1.weight"].shape == (64, 32, 3, 3)
    assert {k.split(".")[0] for k in dec if ".pool." in k} == {"3", "4", "5"}
    assert dec["19.weight"].shape == (3, 64, 3, 3)


def test_shapes_with_random_weights(random_model):
    x = torch.rand(2, 3, 64, 48)
    with torch.inference_mode():
        latent = random_model.encode(x)
        assert latent.shape == (2, 32, 8, 6)
        assert random_model.decode(latent).shape == (2, 3, 64, 48)
        twin = random_model(torch.rand(1, 3, 37, 21))  # padded to 40x24, cropped back
    assert twin.shape == (1, 3, 37, 21)
    assert float(twin.min()) >= 0.0 and float(twin.max()) <= 1.0


def test_too_small_or_wrong_shape_is_refused(random_model):
    with pytest.raises(ValueError, match="at least 8"):
        random_model(torch.rand(1, 3, 7, 32))
    with pytest.raises(ValueError, match="expected"):
        random_model(torch.rand(3, 32, 32))
    assert random_model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_make_twins_keeps_order_and_sizes(random_model):
    rng = np.random.default_rng(0)
    sizes = [(16, 24), (24, 16), (16, 24)]
    arrays = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]
    twins = make_twins(arrays, random_model, batch_size=2, progress=False)  # [0, 2], then [1]
    assert [t.shape for t in twins] == [a.shape for a in arrays]
    assert all(t.dtype == np.uint8 for t in twins)
    # The same two images batched in the other order: each twin belongs to its own input.
    batch = torch.from_numpy(np.stack([arrays[2], arrays[0]])).permute(0, 3, 1, 2) / 255.0
    with torch.inference_mode():
        ref = random_model(batch).mul(255).round().permute(0, 2, 3, 1).numpy()
    assert np.abs(ref[1] - twins[0]).max() <= 1 and np.abs(ref[0] - twins[2]).max() <= 1
    assert np.abs(ref[0] - twins[0]).max() > 1


def test_psnr():
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 1) == pytest.approx(48.13, abs=0.01)


# --------------------------------------------------------------------------- real weights


@shared
def test_real_weights_load_strictly(real_model):
    # from_files loads with strict=True; a missing or unexpected key would have raised.
    assert not any(p.requires_grad for p in real_model.parameters())
    assert all(p.dtype == torch.float32 for p in real_model.parameters())
    assert real_model.latent_channels == 32


@shared
@pytest.mark.parametrize("size", [(128, 96), (100, 70)])
def test_twin_of_a_smooth_image_is_close_but_not_identical(real_model, size):
    image = smooth_image(*size)
    twin = make_twin(image, real_model)
    assert twin.size == image.size and twin.mode == "RGB"
    original, decoded = np.asarray(image), np.asarray(twin)
    assert psnr(original, decoded) > MIN_PSNR
    assert np.abs(original.astype(int) - decoded.astype(int)).max() > 0


@shared
def test_four_gate_groups_reconstruct_best(real_model):
    """The GroupNorm group count is not in the state dict; this pins down the measured choice."""
    image = smooth_image(128, 96)
    scores = {}
    for groups in (2, 8):
        model = TwinAutoencoder.from_files(
            GENERATORS / ENCODER_FILE, GENERATORS / DECODER_FILE, gate_groups=groups
        )
        scores[groups] = psnr(np.asarray(image), np.asarray(make_twin(image, model)))
    best = psnr(np.asarray(image), np.asarray(make_twin(image, real_model)))
    assert best > max(scores.values()) + 1.0, (best, scores)


@shared
def test_command_line_writes_a_twin(tmp_path, capsys):
    src, out = tmp_path / "in.png", tmp_path / "twin.png"
    smooth_image(100, 70).save(src)
    assert main(["--in", str(src), "--out", str(out), "--generators", str(GENERATORS)]) == 0
    assert Image.open(out).size == (100, 70)
    assert "PSNR" in capsys.readouterr().out
