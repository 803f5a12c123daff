"""Scoring needs ONNX Runtime, NumPy and Pillow, never torch (torch is the `train` extra).

The check runs in a fresh interpreter in which `import torch` fails, as on a machine where
`pip install humanmade` left torch out: a release without a trace network must load and
score there, and one with a trace network must say what to install instead of crashing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from clip_support import random_head, real_clip_model
from conftest import make_image

from detector_core.calibration import Calibration
from detector_core.fusion import Fusion
from detector_core.model_files import CLIP_SHA256
from detector_core.verdict import BandCutoffs
from detector_core.weights import DEFAULT_WEIGHTS, ClipSpec, load_weights, save_weights

# Makes `import torch` (and torchvision, timm) fail in the child, whatever is installed.
_BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "timm"):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_TORCH + code],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )


def _clip_only_release(folder: Path, blocks: tuple[int, ...] = (11,)) -> Path:
    rng = np.random.default_rng(0)
    width = len(blocks) * 768
    head = random_head(1)
    if len(blocks) > 1:
        head = type(head)(
            **{n: np.tile(v, len(blocks)) for n, v in head.state().items() if n != "bias"},
            bias=float(rng.normal()),
        )
    assert head.cls_weight.shape == (width,)
    path = folder / "clip-only.safetensors"
    sha = save_weights(
        path,
        None,
        Calibration(),
        "clip-only-test",
        None,
        cutoffs=BandCutoffs(0.2, 0.9),
        clip=ClipSpec(head, CLIP_SHA256, max_crops=2, blocks=blocks),
        fusion=Fusion.single("clip"),
    )
    (folder / "README.md").write_text(f"- sha256 of `{path.name}`: `{sha}`\n")
    return path


def test_a_release_without_a_trace_network_loads_without_torch(tmp_path) -> None:
    path = _clip_only_release(tmp_path, blocks=(3, 11))
    loaded = load_weights(path)
    assert loaded.model is None and loaded.tile_size is None
    assert loaded.experts == ("clip",) and loaded.clip.blocks == (3, 11)


def test_score_imports_no_torch(tmp_path) -> None:
    real_clip_model()
    weights = _clip_only_release(tmp_path, blocks=(0, 5, 11))
    image = tmp_path / "photo.png"
    make_image(300, 260, seed=3).save(image)
    result = _run(
        f"""
import json, sys
import detector_core
from detector_core import Detector
verdict = Detector({str(weights)!r}).score({str(image)!r}, heatmap=True)
print(json.dumps({{
    "p": verdict.ai_probability,
    "band": verdict.band.value,
    "heatmap": verdict.heatmap is not None,
    "torch": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")),
}}))
"""
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["torch"] == []
    assert 0.0 <= out["p"] <= 1.0 and out["heatmap"]


def test_the_default_release_scores_without_torch(tmp_path) -> None:
    real_clip_model()
    loaded = load_weights(DEFAULT_WEIGHTS)
    if loaded.model is not None:
        pytest.fail("the default release carries a trace network: scoring would need torch")
    image = tmp_path / "photo.jpg"
    make_image(400, 300, seed=4).save(image, quality=90)
    result = _run(
        f"""
import sys
from detector_core import Detector
print(Detector().score({str(image)!r}).band.value)
assert "torch" not in sys.modules
"""
    )
    assert result.returncode == 0, result.stderr


def test_a_trace_release_without_torch_says_what_to_install(tiny_weights) -> None:
    result = _run(
        f"""
from detector_core.errors import WeightsError
from detector_core.weights import load_weights
try:
    load_weights({str(tiny_weights)!r})
except WeightsError as exc:
    print("ERR", exc)
"""
    )
    assert result.returncode == 0, result.stderr
    assert "ERR" in result.stdout and "humanmade[train]" in result.stdout
