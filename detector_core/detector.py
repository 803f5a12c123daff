"""The one public scoring API: `Detector.score`, `score_many` and `score_url`."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import HumanmadeError, ImageTooSmallError
from .intake import DecodedImage, ImageSource, IntakeLimits, load_image
from .model import PatchModel
from .tiling import MIN_SIDE, cut_tiles, plan_tiles
from .verdict import BandCutoffs, ImageFacts, Verdict
from .weights import LoadedWeights, default_weights_path, load_weights, torch_device

if TYPE_CHECKING:
    from .fetch import FetchPolicy

DEFAULT_MAX_TILES = 16
DEFAULT_BATCH_TILES = 16


@torch.inference_mode()
def tile_logits(
    model: PatchModel,
    tiles: np.ndarray,
    device: torch.device,
    batch_size: int = DEFAULT_BATCH_TILES,
) -> np.ndarray:
    """Raw logits for a stack of equally sized (N, H, W, 3) uint8 tiles."""
    out = []
    for start in range(0, len(tiles), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(tiles[start : start + batch_size]))
        batch = batch.to(device).permute(0, 3, 1, 2).float().div_(255.0)
        out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out)


def image_logit(
    model: PatchModel,
    pixels: np.ndarray,
    tile_size: int,
    max_tiles: int,
    device: torch.device,
) -> tuple[float, np.ndarray]:
    """The image's raw logit (mean over its tiles) and the per-tile logits."""
    tiles = plan_tiles(pixels.shape[1], pixels.shape[0], tile_size, max_tiles)
    logits = tile_logits(model, cut_tiles(pixels, tiles), device)
    return float(logits.mean()), logits


def _check_size(decoded: DecodedImage) -> None:
    if decoded.width < MIN_SIDE or decoded.height < MIN_SIDE:
        raise ImageTooSmallError(
            f"The image is {decoded.width}×{decoded.height} pixels; at least "
            f"{MIN_SIDE}×{MIN_SIDE} is needed to judge it."
        )


class Detector:
    """Scores images for signs of AI generation. Thread-safe; weights load once, lazily.

    `weights`: a .safetensors path (default: `$HUMANMADE_WEIGHTS` or the committed release).
    `expected_sha256`: verify against this instead of the model card beside the weights.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        expected_sha256: str | None = None,
        cutoffs: BandCutoffs | None = None,
        max_tiles: int = DEFAULT_MAX_TILES,
        limits: IntakeLimits | None = None,
        fetch_policy: FetchPolicy | None = None,
        device: str | None = "cpu",
    ) -> None:
        if max_tiles < 1:
            raise ValueError("max_tiles must be at least 1")
        self.weights_path = Path(weights) if weights is not None else default_weights_path()
        self.expected_sha256 = expected_sha256
        self.cutoffs = cutoffs or BandCutoffs()
        self.max_tiles = max_tiles
        self.limits = limits or IntakeLimits()
        self.fetch_policy = fetch_policy
        self.device = torch_device(device)
        self._loaded: LoadedWeights | None = None
        self._lock = threading.Lock()

    def load(self) -> LoadedWeights:
        """Load and verify the weights now (otherwise the first score does it)."""
        return self.loaded

    @property
    def loaded(self) -> LoadedWeights:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    loaded = load_weights(self.weights_path, self.expected_sha256)
                    loaded.model.to(self.device)
                    self._loaded = loaded
        return self._loaded

    @property
    def model_version(self) -> str:
        return self.loaded.version

    def score(self, source: ImageSource) -> Verdict:
        """Score one image: a path, bytes, a binary file object or a PIL image."""
        return self.score_many([source])[0]

    def score_url(self, url: str) -> Verdict:
        """Fetch an http(s) URL safely (see `fetch.FetchPolicy`) and score what it holds."""
        from .fetch import FetchPolicy, fetch_url

        started = time.perf_counter()
        fetched = fetch_url(url, self.fetch_policy or FetchPolicy())
        return self._score_decoded([load_image(fetched.data, self.limits)], started)[0]

    def score_many(
        self, sources: Iterable[ImageSource], *, return_errors: bool = False
    ) -> list[Verdict | HumanmadeError]:
        """Score several images, batching tiles of equal shape across images.

        With `return_errors`, a bad input yields its `HumanmadeError` in its place instead of
        raising, so one broken file does not cost the rest of the batch.
        """
        started = time.perf_counter()
        results: list[Verdict | HumanmadeError | None] = []
        decoded: list[DecodedImage] = []
        positions: list[int] = []
        for source in sources:
            try:
                image = load_image(source, self.limits)
                _check_size(image)
            except HumanmadeError as exc:
                if not return_errors:
                    raise
                results.append(exc)
                continue
            positions.append(len(results))
            results.append(None)
            decoded.append(image)
        for pos, verdict in zip(positions, self._score_decoded(decoded, started), strict=True):
            results[pos] = verdict
        return results  # type: ignore[return-value]

    def _score_decoded(self, images: Sequence[DecodedImage], started: float) -> list[Verdict]:
        for image in images:
            _check_size(image)
        loaded = self.loaded
        plans = []
        by_shape: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = defaultdict(list)
        for i, image in enumerate(images):
            pixels = np.asarray(image.image, dtype=np.uint8)
            tiles = plan_tiles(image.width, image.height, loaded.tile_size, self.max_tiles)
            plans.append(len(tiles))
            for tile in cut_tiles(pixels, tiles):
                by_shape[tile.shape[:2]].append((i, tile))
        per_image: list[list[float]] = [[] for _ in images]
        for entries in by_shape.values():
            logits = tile_logits(loaded.model, np.stack([t for _, t in entries]), self.device)
            for (i, _), logit in zip(entries, logits, strict=True):
                per_image[i].append(float(logit))
        elapsed_ms = (time.perf_counter() - started) * 1000.0 / max(1, len(images))
        verdicts = []
        for image, logits, n_tiles in zip(images, per_image, plans, strict=True):
            probability = float(loaded.calibration.probability(np.mean(logits)))
            verdicts.append(
                Verdict(
                    ai_probability=probability,
                    band=self.cutoffs.band(probability),
                    model_version=loaded.version,
                    image=ImageFacts(
                        width=image.width,
                        height=image.height,
                        format=image.format,
                        sha256=image.sha256,
                        n_bytes=image.n_bytes,
                    ),
                    elapsed_ms=elapsed_ms,
                    tiles_scored=n_tiles,
                    tile_probabilities=tuple(
                        float(p) for p in loaded.calibration.probability(np.array(logits))
                    ),
                )
            )
        return verdicts


_default: Detector | None = None
_default_lock = threading.Lock()


def default_detector() -> Detector:
    """One shared Detector per process, with the default weights."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Detector()
    return _default


def score(source: ImageSource) -> Verdict:
    return default_detector().score(source)


def score_url(url: str) -> Verdict:
    return default_detector().score_url(url)
