"""Shared fixtures: small images made in code, and throw-away weights for fast tests."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector_core.calibration import Calibration
from detector_core.model import LocalTraceNet, ModelConfig
from detector_core.weights import save_weights

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
DATASET = Path(os.environ.get("HUMANMADE_DATASET", SHARED / "datasets"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def needs_shared(path: Path = DATASET):
    """Skip where ../shared is absent (a user's clone); in CI its absence is a failure."""
    if path.exists():
        return pytest.mark.shared
    if IN_CI:
        pytest.fail(f"CI=true but {path} is missing", pytrace=False)
    return pytest.mark.skip(reason=f"{path} is absent (it ships only beside CI)")


def make_image(width: int = 96, height: int = 64, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


@pytest.fixture
def png_bytes() -> bytes:
    return encode(make_image())


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A randomly initialised small network with a model card, tile size 64."""
    torch.manual_seed(0)
    model = LocalTraceNet(ModelConfig(widths=(4, 8, 8), strides=(2, 2)))
    model.eval()
    folder = tmp_path_factory.mktemp("weights")
    path = folder / "tiny.safetensors"
    sha = save_weights(path, model, Calibration(1.0, 0.0), "test-0", tile_size=64)
    card = f"# tiny test model\n\n- sha256 of `tiny.safetensors`: `{sha}`\n"
    (folder / "README.md").write_text(card)
    return path
