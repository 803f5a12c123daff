"""Frozen CLIP token summaries of training images, cached by image sha256 and view.

Training a head on frozen features is cheap; running the encoder is not (≈ 80 ms a crop on
two CPU cores). So every (image, view) is encoded once and kept in a cache outside the
repository: reruns with other heads, folds or fusion settings read the cache.

View 0 is what scoring sees (the centre crop at native resolution); views 1… are the same
random augmentation for both classes as the trace networks get (re-encoding, rescale, blur,
noise, crops), drawn from a generator seeded by the image's sha256 and the view number, so a
view's features never depend on which other images were in the run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..experts.clip import BLOCKS, CROP, TOKENS, ClipEncoder, cut_crops, upscale_to_crop
from ..intake import IntakeLimits, load_image
from ..model_files import cache_dir
from .data import AugmentConfig, augment

VIEW_AUGMENT = replace(AugmentConfig(), crop=CROP)


@dataclass(frozen=True)
class ImageRef:
    path: Path
    sha256: str


def features_dir(model_sha256: str) -> Path:
    """Where the features of every block are kept (heads pick the blocks they read)."""
    return cache_dir() / "features" / f"clip-{model_sha256[:12]}-blocks"


def block_encoder(path: Path) -> ClipEncoder:
    """The encoder that feature extraction runs: every block's residual stream."""
    return ClipEncoder(path, blocks=tuple(range(BLOCKS)))


def view_crop(image: Image.Image, sha256: str, view: int) -> np.ndarray:
    """The (224, 224, 3) uint8 crop of one view of an image."""
    if view == 0:
        return cut_crops(image, 1)[0][0]
    rng = random.Random(int(sha256[:16], 16) * 1009 + view)
    work, _ = upscale_to_crop(image.convert("RGB"))
    return np.asarray(augment(work, VIEW_AUGMENT, rng), dtype=np.uint8)


class FeatureCache:
    """(class token, mean patch token) of every block per (image sha256, view): (2, 12, 768)
    float16 .npy files.

    `batch`: the encoder's batch size, part of the key because the int8 graph's tokens
    depend on it (see `ClipEncoder`); `also`: other batch sizes whose features will do
    (training views accept the single-crop features scoring uses, never the reverse).
    """

    def __init__(self, root: Path, batch: int = 1, also: tuple[int, ...] = ()) -> None:
        self.root = Path(root)
        self.batch = batch
        self.also = also

    def _path(self, sha256: str, view: int, batch: int) -> Path:
        return self.root / sha256[:2] / f"{sha256}.v{view}.b{batch}.npy"

    def get(self, sha256: str, view: int) -> np.ndarray | None:
        for batch in (self.batch, *self.also):
            path = self._path(sha256, view, batch)
            if not path.is_file():
                continue
            try:
                return np.load(path)
            except (OSError, ValueError):  # a file cut short by a killed run: encode again
                continue
        return None

    def put(self, sha256: str, view: int, features: np.ndarray) -> None:
        path = self._path(sha256, view, self.batch)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        np.save(partial, features.astype(np.float16))
        partial.replace(path)


def extract(
    refs: Sequence[ImageRef],
    views: int,
    encoder: ClipEncoder,
    cache: FeatureCache,
    progress: bool = True,
) -> np.ndarray:
    """(len(refs), views, 2, 12, 768) float32 features (class and mean patch token of each
    block), encoding only what the cache lacks. `encoder` reads every block
    (`block_encoder`). Crops go to the encoder in batches of `cache.batch`, as the cache's
    key says.
    """
    from tqdm import tqdm

    limits = IntakeLimits()
    if encoder.blocks != tuple(range(BLOCKS)):
        raise ValueError("feature extraction reads every block: use block_encoder()")
    out = np.zeros((len(refs), views, 2, BLOCKS, TOKENS), dtype=np.float32)
    todo: list[tuple[int, int]] = []
    for i, ref in enumerate(refs):
        for v in range(views):
            cached = cache.get(ref.sha256, v)
            if cached is None:
                todo.append((i, v))
            else:
                out[i, v] = cached
    bar = tqdm(total=len(todo), desc="CLIP features", unit="view", disable=not progress)
    pending: list[tuple[int, int, np.ndarray]] = []
    loaded: tuple[int, Image.Image] | None = None

    def flush() -> None:
        cls, patches = encoder.tokens(np.stack([crop for _, _, crop in pending]), cache.batch)
        summary = np.stack([cls, patches.mean(axis=2)], axis=1)
        for (i, v, _), feats in zip(pending, summary, strict=True):
            cache.put(refs[i].sha256, v, feats)
            out[i, v] = feats
        bar.update(len(pending))
        pending.clear()

    for i, v in todo:
        if loaded is None or loaded[0] != i:
            loaded = (i, load_image(refs[i].path, limits).image)
        pending.append((i, v, view_crop(loaded[1], refs[i].sha256, v)))
        if len(pending) >= cache.batch:
            flush()
    if pending:
        flush()
    bar.close()
    return out


def extract_cached_views(
    refs: Sequence[ImageRef],
    views: int,
    encoder: ClipEncoder,
    cache: FeatureCache,
    progress: bool = True,
) -> tuple[np.ndarray, int]:
    """Like `extract`, but only view 0 is encoded when missing; an augmented view that the
    cache lacks is replaced by view 0 (so that image counts once, unaugmented). Returns the
    features and how many views were replaced: for runs whose encoder time is short."""
    out = np.repeat(extract(refs, 1, encoder, cache, progress), views, axis=1)
    replaced = 0
    for i, ref in enumerate(refs):
        for v in range(1, views):
            cached = cache.get(ref.sha256, v)
            if cached is None:
                replaced += 1
            else:
                out[i, v] = cached
    return out, replaced
