"""Training data: manifest rows, in-memory images, and augmentation shared by both classes.

The shared dataset is biased (formats, sizes and alpha differ by class; one source holds half
of the AI images). Everything here exists to keep the network from learning those shortcuts:
every image goes through the same random re-encoding, crop and flattening, and sampling
balances classes and sources.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

from ..intake import IntakeLimits, load_image

DATASET_ENV = "HUMANMADE_DATASET"


def default_dataset_dir() -> Path:
    """`$HUMANMADE_DATASET`, else `../shared/datasets` beside the repository."""
    env = os.environ.get(DATASET_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "datasets"


@dataclass(frozen=True)
class ManifestRow:
    file: str
    split: str
    label: str
    source_group: str
    generator: str
    content: str
    # Who decided the label: "dataset" (the shared dataset), or, in a site's review export,
    # "reviewer" (a person) or "confident_score" (the model itself; see training.feedback).
    label_origin: str = "dataset"
    # The model version that scored the image (review exports only).
    model_version: str = ""
    # Of the file the image was cut from, and where it came from (`repo@commit:path` or
    # `package@version:path`): what the sealed set's exclusion list and reserved sources name.
    sha256_original: str = ""
    origin: str = ""

    @property
    def target(self) -> int:
        return 1 if self.label == "ai" else 0


def read_manifest(dataset_dir: Path, split: str | None = None) -> list[ManifestRow]:
    manifest = dataset_dir / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"no manifest.csv in {dataset_dir}")
    rows = []
    # utf-8-sig: a manifest saved by a spreadsheet starts with a BOM, which would otherwise
    # become part of the first column's name ("\ufefffile") and hide that column.
    with manifest.open(newline="", encoding="utf-8-sig") as fh:
        for raw in csv.DictReader(fh):
            if raw["label"] not in ("ai", "human"):
                raise ValueError(f"{manifest}: unknown label {raw['label']!r} for {raw['file']}")
            if split is not None and raw["split"] != split:
                continue
            rows.append(
                ManifestRow(
                    file=raw["file"],
                    split=raw["split"],
                    label=raw["label"],
                    source_group=raw["source_group"],
                    generator=raw.get("generator", "") or "",
                    content=raw.get("content", "") or "",
                    label_origin=raw.get("label_origin") or "dataset",
                    model_version=raw.get("model_version", "") or "",
                    sha256_original=raw.get("sha256_original", "") or "",
                    origin=raw.get("origin", "") or "",
                )
            )
    return rows


def load_pixels(dataset_dir: Path, rows: Sequence[ManifestRow], progress: bool = True) -> list:
    """Decode every row to an RGB uint8 array, exactly as the Detector would decode it."""
    from tqdm import tqdm

    limits = IntakeLimits()
    arrays = []
    for row in tqdm(rows, desc="decoding", unit="img", disable=not progress):
        decoded = load_image(dataset_dir / row.file, limits)
        arrays.append(np.asarray(decoded.image, dtype=np.uint8))
    return arrays


def balanced_weights(rows: Sequence[ManifestRow]) -> list[float]:
    """Sampling weights: each class half of the draws; within a class, sources by sqrt(size).

    sqrt keeps a 1,100-image source from drowning the rest without letting a 3-image
    source be drawn as often as it.
    """
    per_source = Counter((r.label, r.source_group) for r in rows)
    raw = [1.0 / math.sqrt(per_source[(r.label, r.source_group)]) for r in rows]
    class_total = Counter()
    for r, w in zip(rows, raw, strict=True):
        class_total[r.label] += w
    return [w / class_total[r.label] for r, w in zip(rows, raw, strict=True)]


@dataclass(frozen=True)
class AugmentConfig:
    crop: int = 128
    p_rescale: float = 0.3
    rescale_range: tuple[float, float] = (0.5, 1.5)
    p_rotate: float = 0.1
    p_blur: float = 0.1
    p_noise: float = 0.15
    p_jpeg: float = 0.75
    jpeg_quality: tuple[int, int] = (50, 100)
    p_double_jpeg: float = 0.2
    p_webp: float = 0.1
    # Also JPEG at the low qualities people meet on forums and messengers (30-50).
    p_low_jpeg: float = 0.1
    p_colour: float = 0.1
    p_screenshot: float = 0.05


_RESAMPLERS = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS)


def _encode(image: Image.Image, fmt: str, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=quality)
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


def colour_jitter(image: Image.Image, rng: random.Random) -> Image.Image:
    """Mild brightness, contrast, saturation and hue changes, drawn from `rng`.

    torchvision's ColorJitter draws from torch's global generator; the factors are drawn
    here so that a view depends only on the dataset's own seed.
    """
    image = TF.adjust_brightness(image, rng.uniform(0.8, 1.2))
    image = TF.adjust_contrast(image, rng.uniform(0.8, 1.2))
    image = TF.adjust_saturation(image, rng.uniform(0.8, 1.2))
    return TF.adjust_hue(image, rng.uniform(-0.02, 0.02))


def screenshot(image: Image.Image, rng: random.Random) -> Image.Image:
    """A copy as a screen capture makes it: shown at a display scale, grabbed, saved again.

    Browsers and viewers resample with cheap filters at fractional zoom, captures keep
    8-bit RGB with no chroma subsampling, and many end up as high-quality 4:4:4 JPEG or PNG.
    """
    zoom = rng.choice((0.5, 0.667, 0.75, 0.8, 1.25, 1.5, 2.0))
    size = (max(16, round(image.width * zoom)), max(16, round(image.height * zoom)))
    image = image.resize(size, rng.choice((Image.Resampling.NEAREST, Image.Resampling.BILINEAR)))
    if rng.random() < 0.5:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=rng.randint(85, 98), subsampling=0)
        buf.seek(0)
        image = Image.open(buf).convert("RGB")
    return image


def augment(image: Image.Image, cfg: AugmentConfig, rng: random.Random) -> Image.Image:
    """One random view of an image, drawn from the same distribution for both classes."""
    if rng.random() < cfg.p_colour:
        image = colour_jitter(image, rng)
    if rng.random() < cfg.p_rescale:
        factor = rng.uniform(*cfg.rescale_range)
        size = (max(16, round(image.width * factor)), max(16, round(image.height * factor)))
        image = image.resize(size, rng.choice(_RESAMPLERS))
    if rng.random() < cfg.p_rotate:
        image = image.rotate(rng.uniform(-10, 10), Image.Resampling.BILINEAR, expand=False)
    if rng.random() < cfg.p_blur:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    if rng.random() < cfg.p_noise:
        arr = np.asarray(image, dtype=np.float32)
        arr = arr + np.random.default_rng(rng.getrandbits(32)).normal(
            0, rng.uniform(1.0, 6.0), arr.shape
        )
        image = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < cfg.p_screenshot:
        image = screenshot(image, rng)
    roll = rng.random()
    if roll < cfg.p_jpeg:
        low = rng.random() < cfg.p_low_jpeg
        quality = rng.randint(30, 50) if low else rng.randint(*cfg.jpeg_quality)
        image = _encode(image, "JPEG", quality)
        if rng.random() < cfg.p_double_jpeg:
            image = _encode(image, "JPEG", rng.randint(*cfg.jpeg_quality))
    elif roll < cfg.p_jpeg + cfg.p_webp:
        image = _encode(image, "WEBP", rng.randint(*cfg.jpeg_quality))
    image = random_crop(image, cfg.crop, rng)
    # Lossless symmetries: flips and quarter turns move no pixel values.
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        image = image.transpose(rng.choice([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270]))
    return image


def random_crop(image: Image.Image, size: int, rng: random.Random) -> Image.Image:
    """A size×size crop; smaller sides are padded by reflection, never stretched."""
    if image.width < size or image.height < size:
        arr = np.asarray(image)
        pad_h, pad_w = max(0, size - arr.shape[0]), max(0, size - arr.shape[1])
        arr = np.pad(arr, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
        image = Image.fromarray(arr)
    left = rng.randint(0, image.width - size)
    top = rng.randint(0, image.height - size)
    return image.crop((left, top, left + size, top + size))


def to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    arr = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


class AugmentedImages(Dataset):
    """Random augmented crops of in-memory images; indices come from a weighted sampler."""

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        targets: Sequence[int],
        cfg: AugmentConfig,
        seed: int = 0,
    ) -> None:
        self.arrays, self.targets, self.cfg, self.seed = arrays, list(targets), cfg, seed
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = augment(Image.fromarray(self.arrays[index]), self.cfg, self._rng)
        return to_tensor(image), torch.tensor(float(self.targets[index]))


def seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    if info is not None:
        info.dataset._rng = random.Random(info.dataset.seed * 1000 + worker_id + info.seed % 997)


def summarise(rows: Iterable[ManifestRow]) -> dict[str, int]:
    counts = Counter(f"{r.split}/{r.label}" for r in rows)
    return dict(sorted(counts.items()))
