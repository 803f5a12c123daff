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
from detector_core.experts.trace import LocalTraceNet, ModelConfig
from detector_core.weights import save_weights

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
DATASET = Path(os.environ.get("HUMANMADE_DATASET", SHARED / "datasets"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# The shared datasets' manifest columns (../shared/datasets/README.md), written out here so
# that tests check the format rather than echo the code; exports add three more.
MANIFEST_COLUMNS = [
    *("file", "split", "label", "source_group", "generator", "content", "width", "height"),
    *("format", "grid", "sha256_original", "transform", "license", "origin", "evidence"),
]
EXPORT_COLUMNS = [*MANIFEST_COLUMNS, "label_origin", "model_version", "sha256"]


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


def write_tiny_weights(folder: Path, name: str, version: str, seed: int) -> Path:
    """A randomly initialised small network (tile size 64) with a model card beside it."""
    torch.manual_seed(seed)
    model = LocalTraceNet(ModelConfig(widths=(4, 8, 8), strides=(2, 2)))
    model.eval()
    path = folder / name
    sha = save_weights(path, model, Calibration(1.0, 0.0), version, tile_size=64)
    (folder / "README.md").write_text(f"# tiny test model\n\n- sha256 of `{name}`: `{sha}`\n")
    return path


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """The tiny test network, version "test-0"."""
    return write_tiny_weights(tmp_path_factory.mktemp("weights"), "tiny.safetensors", "test-0", 0)


@pytest.fixture(scope="session")
def new_weights(tmp_path_factory) -> Path:
    """Another tiny network (other random weights), released as version "test-1"."""
    folder = tmp_path_factory.mktemp("new-weights")
    return write_tiny_weights(folder, "tiny-v1.safetensors", "test-1", 1)


# The cms_plugin tests' settings and commit helpers. A test module that needs other settings
# defines its own `cms`, which takes precedence.


@pytest.fixture
def cms(settings, tiny_weights, tmp_path):
    """Django settings with the tiny test weights and a media folder of the test's own."""
    from cms_support import humanmade_conf

    settings.HUMANMADE = humanmade_conf(tiny_weights)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings


@pytest.fixture
def fresh_cms(cms):
    """`cms`, with the process's cached Detector dropped before and after the test."""
    from cms_plugin import services

    services.forget_detector()
    yield cms
    services.forget_detector()


@pytest.fixture
def run_commits(django_capture_on_commit_callbacks):
    """Run on_commit callbacks (scoring) as the test's transaction would have committed:
    (what `fn` returned, the callbacks run). Modules wanting only the result define their own."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            result = fn(*args, **kwargs)
        return result, callbacks

    return run
