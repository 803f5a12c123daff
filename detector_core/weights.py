"""Saving and loading released weights, with the integrity check against the model card.

Scoring needs no torch: the file is read as numpy arrays, and only a release that carries a
trace network (v0.1.0, v0.2.0) builds it, with torch (the `train` extra).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from .calibration import Calibration
from .errors import WeightsError
from .experts.clip import DEFAULT_MAX_CROPS, LAST_BLOCK, ClipHead
from .fusion import Fusion

if TYPE_CHECKING:
    from .experts.trace import PatchModel
from .model_files import file_sha256
from .verdict import BandCutoffs

log = logging.getLogger(__name__)

WEIGHTS_ENV = "HUMANMADE_WEIGHTS"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# v0.3.0 (the CLIP expert alone); v0.2.0 and v0.1.0 stay beside it for comparison.
DEFAULT_WEIGHTS = WEIGHTS_DIR / "humanmade-0.3.0.safetensors"
MODEL_CARD_NAME = "README.md"
FORMAT_TAG = "humanmade-weights/1"
CLIP_PREFIX = "clip."
_CARD_SHA_LINE = re.compile(r"sha256 of `(?P<name>[^`]+)`: `(?P<sha>[0-9a-f]{64})`")


@dataclass(frozen=True)
class LoadedWeights:
    # The trace network (torch), or None for a release without one.
    model: PatchModel | None
    calibration: Calibration
    version: str
    tile_size: int | None
    sha256: str
    path: Path
    metadata: dict[str, str]
    # The band cut-offs that go with this calibration (metadata "cutoffs"; default 0.20/0.80).
    cutoffs: BandCutoffs = BandCutoffs()
    # The CLIP expert's head, when the release has one; `trace` is always there.
    clip: ClipSpec | None = None
    # How the experts' logits become one; a single-network release passes "trace" through.
    fusion: Fusion = Fusion.single("trace")

    @property
    def experts(self) -> tuple[str, ...]:
        return self.fusion.names

    @property
    def single_expert(self) -> bool:
        return len(self.fusion.experts) == 1

    def expert_calibration(self, name: str) -> Calibration:
        """How `name`'s raw logit becomes its own probability."""
        if self.single_expert:
            return self.calibration
        return next(e.calibration for e in self.fusion.experts if e.name == name)

    def expert_probabilities(self, logits: dict[str, float]) -> dict[str, float]:
        return {n: float(self.expert_calibration(n).probability(logits[n])) for n in self.experts}

    def probability(self, logits: dict[str, float]) -> float:
        """The release's calibrated probability from its experts' raw logits."""
        return float(self.calibration.probability(self.fusion.logit(logits)))

    def driver(self, logits: dict[str, float]) -> str:
        """The expert whose patch map explains the score best (see `Fusion.driver`)."""
        return self.fusion.driver(logits)


@dataclass(frozen=True)
class ClipSpec:
    """What a release needs of the CLIP expert: its head, crop cap, the encoder's sha256 and
    the blocks whose tokens the head reads (v0.2.0: the last one only)."""

    head: ClipHead
    encoder_sha256: str
    max_crops: int = DEFAULT_MAX_CROPS
    blocks: tuple[int, ...] = (LAST_BLOCK,)

    def to_json(self) -> str:
        return json.dumps(
            {
                "encoder_sha256": self.encoder_sha256,
                "max_crops": self.max_crops,
                "blocks": list(self.blocks),
            }
        )


def default_weights_path() -> Path:
    """`$HUMANMADE_WEIGHTS` if set, else the release committed in `weights/`."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env) if env else DEFAULT_WEIGHTS


def card_sha256(weights_path: Path) -> str | None:
    """The sha256 the model card beside the weights records for this file, if any."""
    card = weights_path.parent / MODEL_CARD_NAME
    if not card.is_file():
        return None
    try:
        text = card.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise WeightsError(f"Cannot read the model card {card}: {exc}") from exc
    for match in _CARD_SHA_LINE.finditer(text):
        if match["name"] == weights_path.name:
            return match["sha"]
    return None


def save_weights(
    path: Path,
    model: PatchModel | None,
    calibration: Calibration,
    version: str,
    tile_size: int | None,
    extra: dict[str, str] | None = None,
    cutoffs: BandCutoffs | None = None,
    clip: ClipSpec | None = None,
    fusion: Fusion | None = None,
) -> str:
    """Write a safetensors release; returns its sha256 for the model card.

    `cutoffs`: band cut-offs chosen for this calibration (e.g. by `humanmade calibrate`);
    without them a Detector falls back to the defaults. `model`: the trace network, or None
    for a release without one. `clip` and `fusion`: the CLIP expert and how the experts are
    combined (see `training.fuse`).
    """
    if model is None and clip is None:
        raise ValueError("a release needs a trace network, a CLIP head or both")
    metadata = {
        "format": FORMAT_TAG,
        "version": version,
        "calibration": json.dumps(
            {"temperature": calibration.temperature, "bias": calibration.bias}
        ),
        **(extra or {}),
    }
    state: dict[str, np.ndarray] = {}
    if model is not None:
        from .experts.trace import model_state

        if tile_size is None:
            raise ValueError("a trace network needs its tile size")
        metadata["config"] = model.config.to_json()
        metadata["tile_size"] = str(tile_size)
        state.update(model_state(model))
    if cutoffs is not None:
        metadata["cutoffs"] = json.dumps({"human": cutoffs.human, "ai": cutoffs.ai})
    if clip is not None:
        metadata["clip"] = clip.to_json()
        for name, value in clip.head.state().items():
            state[CLIP_PREFIX + name] = value.copy()
    if fusion is not None:
        metadata["fusion"] = fusion.to_json()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and moved into place: an interrupted or failed write (disk
    # full, Ctrl-C after hours of training) must not leave a truncated file where the
    # previous weights were.
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        save_file(state, str(partial), metadata=metadata)
        make_readable(partial)
        os.replace(partial, path)
    except SafetensorError as exc:  # the Rust writer reports I/O errors as its own type
        raise OSError(f"cannot write {path}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return file_sha256(path)


def make_readable(path: Path) -> None:
    """Give `path` the mode a normal new file gets (0666 less the umask).

    safetensors (0.8) creates files 0600: weights written by one user, then deployed to web
    workers running as another, would fail to load with "permission denied".
    """
    umask = os.umask(0)  # the only way to read it before Python 3.13 (os.umask sets it)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def output_problem(path: Path, *inputs: Path | None) -> str | None:
    """Why new weights cannot be written to `path`, or None; for checking before long work.

    `inputs` are the weights the command reads: writing over one would destroy the model the
    new one derives from (and break the sha256 its model card records).
    """
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder; give the file name of the new weights (.safetensors)"
    for source in inputs:
        if source is not None and path.resolve() == Path(source).resolve():
            return f"{path} is the input weights; write the new weights to another file"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"cannot create {path.parent}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write to {folder} (permission denied)"
    return None


def read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, tensors) of a humanmade weights file, unverified; WeightsError if unusable."""
    try:
        with safe_open(str(path), framework="np") as fh:
            metadata = dict(fh.metadata() or {})
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path.name} is not a readable safetensors file: {exc}") from exc
    if metadata.get("format") != FORMAT_TAG:
        raise WeightsError(f"{path.name} is not a humanmade weights file (format tag missing).")
    return metadata, state


def load_weights(path: Path, expected_sha256: str | None = None) -> LoadedWeights:
    """Load and verify weights.

    The sha256 must match `expected_sha256` or, failing that, the model card beside the
    file. The committed release must have a card entry; other files without one load with a
    warning, for people training their own.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"No weights at {path}. Set {WEIGHTS_ENV} or pass a path to a .safetensors file."
        )
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise WeightsError(f"Cannot read the weights {path}: {exc}") from exc
    expected = expected_sha256 or card_sha256(path)
    if expected is None:
        if path.resolve() == DEFAULT_WEIGHTS.resolve():
            raise WeightsError(f"The model card {WEIGHTS_DIR / MODEL_CARD_NAME} records no sha256.")
        log.warning("No sha256 recorded for %s; loading it unverified.", path)
    elif actual != expected:
        raise WeightsError(
            f"{path.name} does not match its recorded sha256 (expected {expected[:12]}…, "
            f"got {actual[:12]}…): the file is damaged or not the released one."
        )
    metadata, state = read_safetensors(path)
    try:
        clip_keys = [k for k in state if k.startswith(CLIP_PREFIX)]
        clip_state = {k[len(CLIP_PREFIX) :]: state.pop(k) for k in clip_keys}
        clip = _read_clip(metadata.get("clip"), clip_state)
        fusion = (
            Fusion.from_json(metadata["fusion"]) if "fusion" in metadata else Fusion.single("trace")
        )
        has_trace = "config" in metadata
        if (
            set(fusion.names) - {"trace", "clip"}
            or ("clip" in fusion.names) != (clip is not None)
            or ("trace" in fusion.names) != has_trace
        ):
            raise ValueError(f"fusion experts {fusion.names} do not match the stored networks")
        if not has_trace and state:
            raise ValueError(f"{len(state)} tensors belong to no expert")
        model = _load_trace(path, metadata["config"], state) if has_trace else None
        tile_size = int(metadata["tile_size"]) if has_trace else None
        cal = json.loads(metadata["calibration"])
        calibration = Calibration(float(cal["temperature"]), float(cal["bias"]))
        cutoffs = _read_cutoffs(metadata.get("cutoffs"))
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise WeightsError(f"{path.name} has inconsistent contents: {exc}") from exc
    return LoadedWeights(
        model=model,
        calibration=calibration,
        version=metadata["version"],
        tile_size=tile_size,
        sha256=actual,
        path=path,
        metadata=metadata,
        cutoffs=cutoffs,
        clip=clip,
        fusion=fusion,
    )


def _load_trace(path: Path, config: str, state: dict[str, np.ndarray]) -> Any:
    """The release's trace network; it runs on torch, which scoring otherwise never needs."""
    try:
        from .experts.trace import load_model
    except ImportError as exc:
        raise WeightsError(
            f"{path.name} carries a trace network, which runs on torch, and torch is not "
            "installed: install the training extra (pip install 'humanmade[train]') or use "
            "a release without a trace network (the default one)."
        ) from exc
    return load_model(config, state)


def _read_clip(text: str | None, state: dict) -> ClipSpec | None:
    if not text and not state:
        return None
    if not text:
        raise ValueError("clip head tensors without clip metadata")
    raw = json.loads(text)
    blocks = tuple(int(b) for b in raw.get("blocks", [LAST_BLOCK]))
    valid = all(0 <= b <= LAST_BLOCK for b in blocks)
    if not blocks or len(set(blocks)) != len(blocks) or not valid:
        raise ValueError(f"clip blocks {blocks} are not distinct blocks 0…{LAST_BLOCK}")
    return ClipSpec(
        head=ClipHead.from_state(state, n_blocks=len(blocks)),
        encoder_sha256=str(raw["encoder_sha256"]),
        max_crops=int(raw.get("max_crops", DEFAULT_MAX_CROPS)),
        blocks=blocks,
    )


def _read_cutoffs(text: str | None) -> BandCutoffs:
    """The "cutoffs" metadata; raises ValueError/TypeError/KeyError when it is malformed."""
    if not text:
        return BandCutoffs()
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError(f"cutoffs is not a JSON object: {text!r}")
    return BandCutoffs(human=float(raw["human"]), ai=float(raw["ai"]))
