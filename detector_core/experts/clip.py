"""The semantic expert: CLIP ViT-B/16 tokens, read from several blocks, with a linear head.

Detectors that generalise to unseen generators stand on large pretrained features; CLIP's
capture what generated content looks like (lighting, texture, rendering of detail) where the
trace networks look for decoder statistics, and the two fail on different images. Frozen-CLIP
detectors generalise better when they read the intermediate blocks too (RINE, ECCV 2024):
the early and middle blocks keep low-level traces that the last block has turned into
semantics. The residual stream after every block is already computed by the graph, so
reading it costs no extra compute, only extra graph outputs.

The encoder runs OpenAI CLIP ViT-B/16's image tower as an int8 ONNX graph (ONNX Runtime) on
224×224 crops taken at the image's native resolution: resizing a large image to 224 px
throws away most of its pixels, so only images smaller than a crop are resized (up).

The head is linear in two token summaries per block read, the class token and the mean patch
token, each standardised. Because it is linear, the image logit is exactly the mean of
per-patch logits `Σ_b (w_cls,b·cls_b + w_patch,b·patch_b,t) + bias`, which gives the patch map
for the heatmap for free.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..tiling import Tile, plan_tiles

CROP = 224
PATCH = 16
TOKENS = 768
BLOCKS = 12
LAST_BLOCK = BLOCKS - 1
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


def block_output_name(block: int) -> str:
    """The graph tensor holding the residual stream after `block` (0-based, not the last)."""
    return f"/vision_model/encoder/layers.{block}/Add_1_output_0"


def _session_bytes(path: Path, blocks: Sequence[int]) -> bytes:
    """The graph to load, in memory: its int8 weights made unsigned (`unsigned_weights`),
    and for intermediate blocks extra outputs holding those blocks' residual streams."""
    import onnx

    model = onnx.load(str(path))
    unsigned_weights(model)
    known = {node_output for node in model.graph.node for node_output in node.output}
    for block in (b for b in blocks if b != LAST_BLOCK):
        name = block_output_name(block)
        if name not in known:
            raise ValueError(f"the CLIP graph has no output for block {block} ({name})")
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return model.SerializeToString()


def unsigned_weights(model) -> int:  # noqa: ANN001 - onnx.ModelProto, imported lazily
    """Give every MatMulInteger uint8 weights and zero points: B + 128 and zp + 128.

    The products (A − a_zp)(B − b_zp) are unchanged, so exact integer arithmetic gives the
    same result. Why it matters: on x86 CPUs without VNNI (AVX2 only), ONNX Runtime
    multiplies uint8 activations by int8 weights with VPMADDUBSW, whose 16-bit sums
    saturate; this graph's weights and activations are large enough for that to wreck the
    features (val AUC 0.96 → 0.61 on such a machine). uint8 × uint8 takes a kernel that
    widens first and does not saturate. Returns the number of nodes changed.
    """
    import numpy as np
    from onnx import TensorProto, numpy_helper

    inits = {init.name: init for init in model.graph.initializer}
    made: dict[str, str] = {}

    def as_unsigned(name: str) -> str:
        if name not in made:
            values = numpy_helper.to_array(inits[name]).astype(np.int16) + 128
            new = numpy_helper.from_array(values.astype(np.uint8), f"{name}__u8")
            model.graph.initializer.append(new)
            made[name] = new.name
        return made[name]

    changed = 0
    for node in model.graph.node:
        if node.op_type != "MatMulInteger" or len(node.input) < 2:
            continue
        weight = inits.get(node.input[1])
        if weight is None or weight.data_type != TensorProto.INT8:
            continue
        inputs = list(node.input) + [""] * (4 - len(node.input))
        zero = inits.get(inputs[3]) if inputs[3] else None
        if inputs[3] and (zero is None or zero.data_type != TensorProto.INT8):
            continue  # a computed zero point: leave the node as it is
        inputs[1] = as_unsigned(inputs[1])
        if zero is not None:
            inputs[3] = as_unsigned(inputs[3])
        else:  # an absent int8 zero point means 0, which is 128 once unsigned
            name = f"{node.name or node.output[0]}__zp_u8"
            model.graph.initializer.append(
                numpy_helper.from_array(np.array(128, dtype=np.uint8), name)
            )
            inputs[3] = name
        del node.input[:]
        node.input.extend(inputs)
        changed += 1
    # Drop the int8 originals nothing reads any more (ORT would warn and keep them).
    used = {i for node in model.graph.node for i in node.input}
    keep = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return changed


class ClipEncoder:
    """The int8 CLIP image tower in ONNX Runtime: crops → class and patch tokens per block.

    `blocks`: which blocks' residual streams to return (0-based; 11 is the final hidden state).
    The graph quantizes its activations with one scale per input tensor, so a crop's tokens
    depend on the other crops in its batch. `batch_size=1` (the default, what scoring uses)
    encodes each crop alone: a verdict never depends on what else was scored with it.
    `providers`: ONNX Runtime execution providers (default CPU; CUDA where onnxruntime-gpu is
    installed). Thread-safe (ONNX Runtime sessions allow concurrent `run`); the session is
    built lazily.
    """

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        batch_size: int = 1,
        blocks: Sequence[int] = (LAST_BLOCK,),
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        self.path = Path(path)
        self.threads = threads
        self.batch_size = batch_size
        self.blocks = tuple(int(b) for b in blocks)
        if not self.blocks or any(not 0 <= b < BLOCKS for b in self.blocks):
            raise ValueError(f"CLIP blocks must be in 0…{LAST_BLOCK}, got {blocks}")
        self.providers = tuple(providers)
        self._session = None
        self._outputs: list[str] = []
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
                    session = ort.InferenceSession(
                        _session_bytes(self.path, self.blocks),
                        options,
                        providers=list(self.providers),
                    )
                    hidden = session.get_outputs()[1].name
                    self._outputs = [
                        hidden if b == LAST_BLOCK else block_output_name(b) for b in self.blocks
                    ]
                    self._session = session
        return self._session

    def tokens(
        self, crops: np.ndarray, batch_size: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Class tokens (N, B, 768) and patch tokens (N, B, 196, 768) of the B blocks read."""
        session = self._get_session()
        step = batch_size or self.batch_size
        cls_out, patch_out = [], []
        for start in range(0, len(crops), step):
            x = normalise(crops[start : start + step])
            streams = np.stack(session.run(self._outputs, {"pixel_values": x}), axis=1)
            cls_out.append(streams[:, :, 0])
            patch_out.append(streams[:, :, 1:])
        return np.concatenate(cls_out), np.concatenate(patch_out)


@dataclass(frozen=True, eq=False)
class ClipHead:
    """Standardise both token summaries of each block read, then one linear layer.

    Every tensor but `bias` has B·768 values, block after block, in the order of the
    release's `blocks` (see `weights.ClipSpec`).
    """

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

    @property
    def n_blocks(self) -> int:
        return self.cls_weight.size // TOKENS

    def _shared(self, cls: np.ndarray) -> np.ndarray:
        flat = cls.reshape(len(cls), -1)
        return ((flat - self.cls_mean) / self.cls_std) @ self.cls_weight + self.bias

    def logits(self, cls: np.ndarray, patch_summary: np.ndarray) -> np.ndarray:
        """Image-level logits from class tokens and mean patch tokens, each (N, B, 768)
        (or (N, 768) for a one-block head)."""
        flat = patch_summary.reshape(len(patch_summary), -1)
        return self._shared(cls) + ((flat - self.patch_mean) / self.patch_std) @ self.patch_weight

    def patch_logits(self, cls: np.ndarray, patches: np.ndarray) -> np.ndarray:
        """(N, 14, 14) patch logits from class tokens (N, B, 768) and patch tokens
        (N, B, P, 768); their mean per crop equals `logits` on the same crop."""
        n, blocks = len(cls), self.n_blocks
        patches = patches.reshape(n, blocks, -1, TOKENS)
        mean = self.patch_mean.reshape(blocks, 1, TOKENS)
        std = self.patch_std.reshape(blocks, 1, TOKENS)
        weight = self.patch_weight.reshape(blocks, 1, TOKENS)
        own = (((patches - mean) / std) * weight).sum(axis=(1, 3))
        side = int(round(np.sqrt(patches.shape[2])))
        return (own + self._shared(cls)[:, None]).reshape(n, side, side)

    def state(self) -> dict[str, np.ndarray]:
        return {
            name: np.asarray(getattr(self, name), dtype=np.float32).reshape(-1)
            for name in self.TENSOR_NAMES
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], n_blocks: int = 1) -> ClipHead:
        values = {name: np.asarray(state[name], dtype=np.float32) for name in cls.TENSOR_NAMES}
        for name in cls.TENSOR_NAMES[:-1]:
            if values[name].shape != (n_blocks * TOKENS,):
                raise ValueError(
                    f"clip head tensor {name} has shape {values[name].shape}, "
                    f"not ({n_blocks * TOKENS},) for {n_blocks} block(s)"
                )
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
