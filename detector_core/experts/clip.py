"""The semantic expert: CLIP ViT-B/16 tokens with a linear head.

Detectors that generalise to unseen generators stand on large pretrained features; CLIP's
capture what generated content looks like (lighting, texture, rendering of detail) where the
trace networks look for decoder statistics, and the two fail on different images.

The encoder runs OpenAI CLIP ViT-B/16's image tower as an int8 ONNX graph (ONNX Runtime, CPU)
on 224×224 crops taken at the image's native resolution: resizing a large image to 224 px
throws away most of its pixels, so only images smaller than a crop are resized (up).

The head is linear in two token summaries, the class token and the mean patch token. Because
it is linear, the image logit is exactly the mean of per-patch logits
`w_cls·cls + w_patch·patch_t + b`, which gives the patch map for the heatmap for free.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..tiling import Tile, plan_tiles

CROP = 224
PATCH = 16
TOKENS = 768
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
DEFAULT_MAX_CROPS = 4


def upscale_to_crop(image: Image.Image) -> tuple[Image.Image, float]:
    """The image enlarged (bicubic) so that its short side is one crop, and the factor.

    Only images smaller than a crop are touched; a factor of 1.0 means native pixels.
    """
    short = min(image.width, image.height)
    if short >= CROP:
        return image, 1.0
    factor = CROP / short
    size = (max(CROP, round(image.width * factor)), max(CROP, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BICUBIC), factor


def _crop_starts(length: int) -> list[int]:
    """Crop origins along one side: the centre alone while a second crop would mostly
    repeat the first (side under 1.5 crops), else a grid flush with both edges."""
    if length < CROP * 3 // 2:
        return [(length - CROP) // 2]
    return [tile.left for tile in plan_tiles(length, CROP, CROP, 10**6)]


def plan_crops(width: int, height: int, max_crops: int) -> list[Tile]:
    """Crop boxes over an image whose sides are ≥ CROP, spread evenly, at most `max_crops`.

    Unlike the trace tiles, a single crop is the centre one: CLIP reads the subject.
    """
    if max_crops < 1:
        raise ValueError("max_crops must be at least 1")
    grid = [Tile(x, y, CROP, CROP) for y in _crop_starts(height) for x in _crop_starts(width)]
    if len(grid) <= max_crops:
        return grid
    if max_crops == 1:
        return [Tile((width - CROP) // 2, (height - CROP) // 2, CROP, CROP)]
    picks = ((np.arange(max_crops) + 0.5) * len(grid) / max_crops).astype(int)
    return [grid[i] for i in picks]


def cut_crops(image: Image.Image, max_crops: int) -> tuple[np.ndarray, list[Tile]]:
    """(N, 224, 224, 3) uint8 crops and their boxes in the original image's coordinates."""
    work, factor = upscale_to_crop(image.convert("RGB"))
    pixels = np.asarray(work, dtype=np.uint8)
    boxes = plan_crops(work.width, work.height, max_crops)
    crops = np.stack([pixels[b.top : b.top + CROP, b.left : b.left + CROP] for b in boxes])
    if factor != 1.0:
        boxes = [
            Tile(
                round(b.left / factor),
                round(b.top / factor),
                max(1, min(image.width, round(CROP / factor))),
                max(1, min(image.height, round(CROP / factor))),
            )
            for b in boxes
        ]
    return crops, boxes


def normalise(crops: np.ndarray) -> np.ndarray:
    """uint8 (N, 224, 224, 3) → float32 (N, 3, 224, 224) with CLIP's mean and std."""
    x = crops.astype(np.float32) / 255.0
    x = (x - CLIP_MEAN) / CLIP_STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class ClipEncoder:
    """The int8 CLIP image tower in ONNX Runtime: crops → (class token, patch tokens).

    The graph quantizes its activations with one scale per input tensor, so a crop's tokens
    depend on the other crops in its batch. `batch_size=1` (the default, what scoring uses)
    encodes each crop alone: a verdict never depends on what else was scored with it.
    Thread-safe (ONNX Runtime sessions allow concurrent `run`); the session is built lazily.
    """

    def __init__(self, path: Path, threads: int | None = None, batch_size: int = 1) -> None:
        self.path = Path(path)
        self.threads = threads
        self.batch_size = batch_size
        self._session = None
        self._lock = threading.Lock()

    def _get_session(self):  # noqa: ANN202 - onnxruntime is imported lazily
        if self._session is None:
            with self._lock:
                if self._session is None:
                    import onnxruntime as ort

                    options = ort.SessionOptions()
                    if self.threads:
                        options.intra_op_num_threads = self.threads
                    # Quiet: ORT warns about unused initializers of the quantized graph.
                    options.log_severity_level = 3
                    self._session = ort.InferenceSession(
                        str(self.path), options, providers=["CPUExecutionProvider"]
                    )
        return self._session

    def tokens(
        self, crops: np.ndarray, batch_size: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Class tokens (N, 768) and patch tokens (N, 196, 768) of the final layer."""
        session = self._get_session()
        step = batch_size or self.batch_size
        cls_out, patch_out = [], []
        for start in range(0, len(crops), step):
            x = normalise(crops[start : start + step])
            _, hidden = session.run(None, {"pixel_values": x})
            cls_out.append(hidden[:, 0])
            patch_out.append(hidden[:, 1:])
        return np.concatenate(cls_out), np.concatenate(patch_out)


@dataclass(frozen=True, eq=False)
class ClipHead:
    """Standardise both token summaries, then one linear layer (see the module docstring)."""

    cls_mean: np.ndarray
    cls_std: np.ndarray
    cls_weight: np.ndarray
    patch_mean: np.ndarray
    patch_std: np.ndarray
    patch_weight: np.ndarray
    bias: float

    TENSOR_NAMES = (
        "cls_mean",
        "cls_std",
        "cls_weight",
        "patch_mean",
        "patch_std",
        "patch_weight",
        "bias",
    )

    def logits(self, cls: np.ndarray, patch_summary: np.ndarray) -> np.ndarray:
        """Image-level logits from class tokens (N, 768) and mean patch tokens (N, 768)."""
        return (
            ((cls - self.cls_mean) / self.cls_std) @ self.cls_weight
            + ((patch_summary - self.patch_mean) / self.patch_std) @ self.patch_weight
            + self.bias
        )

    def patch_logits(self, cls: np.ndarray, patches: np.ndarray) -> np.ndarray:
        """(N, 14, 14) patch logits; their mean per crop equals `logits` on the same crop."""
        shared = ((cls - self.cls_mean) / self.cls_std) @ self.cls_weight + self.bias
        own = ((patches - self.patch_mean) / self.patch_std) @ self.patch_weight
        side = int(round(np.sqrt(patches.shape[1])))
        return (own + shared[:, None]).reshape(len(cls), side, side)

    def state(self) -> dict[str, np.ndarray]:
        return {
            name: np.asarray(getattr(self, name), dtype=np.float32).reshape(-1)
            for name in self.TENSOR_NAMES
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> ClipHead:
        values = {name: np.asarray(state[name], dtype=np.float32) for name in cls.TENSOR_NAMES}
        for name in cls.TENSOR_NAMES[:-1]:
            if values[name].shape != (TOKENS,):
                raise ValueError(f"clip head tensor {name} has shape {values[name].shape}")
        values["bias"] = float(values["bias"].reshape(-1)[0])
        return cls(**values)


class ClipExpert:
    """Encoder + head: pixels → patch maps over native crops, and the image logit."""

    name = "clip"

    def __init__(self, encoder: ClipEncoder, head: ClipHead, max_crops: int) -> None:
        self.encoder, self.head, self.max_crops = encoder, head, max_crops

    def score(self, image: Image.Image, max_crops: int | None = None):
        """(image logit, crop boxes, patch-logit maps (N, 14, 14)) for one image."""
        crops, boxes = cut_crops(image, max_crops or self.max_crops)
        cls, patches = self.encoder.tokens(crops)
        maps = self.head.patch_logits(cls, patches)
        return float(maps.mean()), boxes, list(maps)
