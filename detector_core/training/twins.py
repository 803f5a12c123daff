"""AI-decoded twins: a human image passed through a tiny FLUX.2-style autoencoder.

Issue #3 ("aligned fakes"). A twin has the content of its human original, but every pixel
was produced by a generator-style latent decoder. Training on (human, twin labelled AI) pairs
means content cannot predict the label; only decoder traces can.

The weights are `taef2_encoder.pth` / `taef2_decoder.pth` in `../shared/generators` (tiny
autoencoders approximating the FLUX.2 VAE, TAESD family, MIT). They are plain state dicts;
the networks below were written for this project from their keys and shapes:

Encoder (image -> latent, 1/8 resolution; top-level indices as in the state dict)::

    0      conv3x3 3->64
    1      ResBlock
    2      conv3x3 stride 2, no bias;   3-5    3 x ResBlock
    6      conv3x3 stride 2, no bias;   7-9    3 x ResBlock
    10     conv3x3 stride 2, no bias;   11-13  3 x ResBlock with pool gate
    14     conv3x3 64->32 (the latent)

Decoder (latent -> image)::

    0      soft clamp 3 * tanh(z / 3)
    1, 2   conv3x3 32->64, ReLU
    3-5    3 x ResBlock with pool gate; 6  nearest x2;  7  conv3x3, no bias
    8-10   3 x ResBlock;                11 nearest x2;  12 conv3x3, no bias
    13-15  3 x ResBlock;                16 nearest x2;  17 conv3x3, no bias
    18     ResBlock
    19     conv3x3 64->3

Every feature map has 64 channels. ResBlock: y = relu(c3(relu(c2(relu(c1(x))))) + x), 3x3
convolutions with bias (`N.conv.{0,2,4}`); no skip projection is needed as widths never
change. In the gated blocks the input first gets a residual 1x1 "pool" gate (`N.pool.{0,1,3}`):
x <- x + conv1x1(relu(groupnorm(conv1x1(x)))), 64 -> 256 -> 64, convolutions without bias,
affine GroupNorm. Its group count is not stored in the state dict; measured on 8 train human
photos (mean PSNR): 4 groups 31.7 dB, 8 groups 29.5, 2 groups 26.3, 1 group 25.5, 32 groups
25.6, so 4 it is.

Value ranges (measured): input RGB in [0, 1]; feeding [-1, 1] instead loses 7-20 dB. Latents
have std ~0.8 and extremes ~+-4.5; the decoder soft-clamps them to (-3, 3). The decoder's raw
output is approximately [0, 1] but overshoots (-0.12..1.10 seen on photos), so `forward`
clamps it. The latent here is the plain 32-channel 1/8-resolution map; FLUX.2's transformer
sees it packed 2x2 into 128 channels at 1/16, which a round trip does not need.

Twins of 256x256 train human photos: median PSNR ~31 dB (10th percentile ~25, worst ~19.5
on a screenshot full of small text). A flat black or white image comes back identical
(the decoder's overshoot is clamped away), so such a pair carries no decoder trace.

    python -m detector_core.training.twins --in photo.jpg --out twin.png
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

GENERATORS_ENV = "HUMANMADE_GENERATORS"
ENCODER_FILE = "taef2_encoder.pth"
DECODER_FILE = "taef2_decoder.pth"

SCALE = 8  # spatial reduction of the latent
WIDTH = 64  # feature channels throughout both networks
LATENT_CHANNELS = 32
GATE_EXPANSION = 4  # the pool gate widens 64 -> 256
GATE_GROUPS = 4  # GroupNorm groups in the pool gate (not stored in the state dict)
LATENT_LIMIT = 3.0  # the decoder soft-clamps latents to (-3, 3)
STAGES = 3  # stride-2 steps: 2**3 == SCALE
BLOCKS_PER_STAGE = 3


def default_generator_dir() -> Path:
    """`$HUMANMADE_GENERATORS`, else `../shared/generators` beside the repository."""
    env = os.environ.get(GENERATORS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "generators"


# --------------------------------------------------------------------------- layers


def _conv3(n_in: int, n_out: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, kernel_size=3, stride=stride, padding=1, bias=bias)


class PoolGate(nn.Sequential):
    """Residual channel-mixing refinement: 1x1 widen, GroupNorm, ReLU, 1x1 narrow.

    Indices 0, 1, 3 carry weights (matching `N.pool.{0,1,3}.*` in the state dicts).
    """

    def __init__(self, channels: int, expansion: int = GATE_EXPANSION, groups: int = GATE_GROUPS):
        hidden = channels * expansion
        super().__init__(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=False),
            nn.GroupNorm(groups, hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=False),
        )


class ResBlock(nn.Module):
    """Three 3x3 convolutions with ReLUs between, added to the input, then ReLU."""

    def __init__(self, n_in: int, n_out: int, gated: bool = False, gate_groups: int = GATE_GROUPS):
        super().__init__()
        self.pool = PoolGate(n_in, groups=gate_groups) if gated else None
        self.conv = nn.Sequential(
            _conv3(n_in, n_out), nn.ReLU(), _conv3(n_out, n_out), nn.ReLU(), _conv3(n_out, n_out)
        )
        # Only a change of width needs a projection; every block in taef2 keeps 64 channels.
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + self.skip(x))


class SoftClamp(nn.Module):
    """limit * tanh(x / limit): identity near 0, saturating smoothly at +-limit."""

    def __init__(self, limit: float = LATENT_LIMIT):
        super().__init__()
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / self.limit) * self.limit


def build_encoder(
    latent_channels: int = LATENT_CHANNELS, gated: bool = True, gate_groups: int = GATE_GROUPS
) -> nn.Sequential:
    """RGB in [0, 1] -> latent at 1/8 resolution. Gates (if any) sit in the deepest stage."""
    layers: list[nn.Module] = [_conv3(3, WIDTH), ResBlock(WIDTH, WIDTH)]
    for stage in range(STAGES):
        layers.append(_conv3(WIDTH, WIDTH, stride=2, bias=False))
        deepest = stage == STAGES - 1
        layers += [
            ResBlock(WIDTH, WIDTH, gated=gated and deepest, gate_groups=gate_groups)
            for _ in range(BLOCKS_PER_STAGE)
        ]
    layers.append(_conv3(WIDTH, latent_channels))
    return nn.Sequential(*layers)


def build_decoder(
    latent_channels: int = LATENT_CHANNELS, gated: bool = True, gate_groups: int = GATE_GROUPS
) -> nn.Sequential:
    """Latent -> RGB (about [0, 1]). Gates (if any) sit in the first, coarsest stage."""
    layers: list[nn.Module] = [SoftClamp(), _conv3(latent_channels, WIDTH), nn.ReLU()]
    for stage in range(STAGES):
        layers += [
            ResBlock(WIDTH, WIDTH, gated=gated and stage == 0, gate_groups=gate_groups)
            for _ in range(BLOCKS_PER_STAGE)
        ]
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), _conv3(WIDTH, WIDTH, bias=False)]
    layers += [ResBlock(WIDTH, WIDTH), _conv3(WIDTH, 3)]
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- model


class TwinAutoencoder(nn.Module):
    """Encoder + decoder; `forward` maps (N, 3, H, W) RGB in [0, 1] to its twin, same size."""

    def __init__(
        self,
        latent_channels: int = LATENT_CHANNELS,
        gated: bool = True,
        gate_groups: int = GATE_GROUPS,
    ):
        super().__init__()
        self.latent_channels = latent_channels
        self.encoder = build_encoder(latent_channels, gated, gate_groups)
        self.decoder = build_decoder(latent_channels, gated, gate_groups)

    @classmethod
    def from_files(
        cls, encoder_path: Path, decoder_path: Path, gate_groups: int = GATE_GROUPS
    ) -> TwinAutoencoder:
        """Build the architecture the state dicts describe and load them strictly (float32)."""
        enc = torch.load(encoder_path, map_location="cpu", weights_only=True)
        dec = torch.load(decoder_path, map_location="cpu", weights_only=True)
        latent_channels = dec["1.weight"].shape[1]  # the decoder's first conv reads the latent
        gated = any(".pool." in k for k in enc) or any(".pool." in k for k in dec)
        model = cls(latent_channels=latent_channels, gated=gated, gate_groups=gate_groups)
        model.encoder.load_state_dict(enc, strict=True)
        model.decoder.load_state_dict(dec, strict=True)
        return model.float().eval().requires_grad_(False)

    @classmethod
    def from_dir(cls, folder: Path | None = None) -> TwinAutoencoder:
        folder = default_generator_dir() if folder is None else Path(folder)
        return cls.from_files(folder / ENCODER_FILE, folder / DECODER_FILE)

    def encode(self, rgb01: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1], sides multiples of 8 -> (N, C, H/8, W/8); std ~0.8."""
        return self.encoder(rgb01)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent -> raw RGB (about [0, 1], may overshoot slightly; not clamped)."""
        return self.decoder(latent)

    def forward(self, rgb01: torch.Tensor) -> torch.Tensor:
        if rgb01.ndim != 4 or rgb01.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W), got {tuple(rgb01.shape)}")
        h, w = rgb01.shape[-2:]
        if min(h, w) < SCALE:
            raise ValueError(f"images must be at least {SCALE} px on each side, got {w}x{h}")
        pad_h, pad_w = (-h) % SCALE, (-w) % SCALE
        x = rgb01
        if pad_h or pad_w:  # pad < 8 <= side, so reflection is always possible
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        twin = self.decode(self.encode(x))
        return twin[..., :h, :w].clamp(0.0, 1.0)


# --------------------------------------------------------------------------- helpers


def _to_tensor(arrays: Sequence[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    batch = torch.from_numpy(np.stack([np.asarray(a, dtype=np.uint8) for a in arrays]))
    return batch.to(device).permute(0, 3, 1, 2).float().div_(255.0)


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    t = t.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
    return t.permute(0, 2, 3, 1).cpu().numpy()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def make_twin(image: Image.Image, model: TwinAutoencoder) -> Image.Image:
    """The RGB twin of one image (same size; any size from 8 px per side)."""
    arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
    with torch.inference_mode():
        out = _to_uint8(model(_to_tensor([arr], _device(model))))[0]
    return Image.fromarray(out, mode="RGB")


def make_twins(
    arrays: Sequence[np.ndarray],
    model: TwinAutoencoder,
    batch_size: int = 8,
    progress: bool = True,
) -> list[np.ndarray]:
    """Twins of (H, W, 3) uint8 arrays, in input order; same-size arrays share batches.

    Runs where the model's parameters are (move the model to a GPU to go faster).
    """
    from tqdm import tqdm

    for i, a in enumerate(arrays):
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"array {i} has shape {a.shape}, expected (H, W, 3)")
    by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, a in enumerate(arrays):
        by_size[a.shape[:2]].append(i)
    out: list[np.ndarray | None] = [None] * len(arrays)
    device = _device(model)
    bar = tqdm(total=len(arrays), desc="twins", unit="img", disable=not progress)
    with torch.inference_mode():
        for indices in by_size.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = _to_tensor([arrays[i] for i in chunk], device)
                twins = _to_uint8(model(batch))
                for i, twin in zip(chunk, twins, strict=True):
                    out[i] = twin
                bar.update(len(chunk))
    bar.close()
    return out  # type: ignore[return-value]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m detector_core.training.twins",
        description="Write the AI-decoded twin of an image and report its PSNR.",
    )
    parser.add_argument("--in", dest="src", type=Path, required=True, help="input image")
    parser.add_argument("--out", type=Path, required=True, help="twin to write (PNG advised)")
    parser.add_argument(
        "--generators",
        type=Path,
        default=None,
        help=f"folder with {ENCODER_FILE} and {DECODER_FILE} (default: ${GENERATORS_ENV} "
        "or ../shared/generators)",
    )
    args = parser.parse_args(argv)

    from ..errors import ImageError
    from ..intake import load_image

    folder = args.generators or default_generator_dir()
    for name in (ENCODER_FILE, DECODER_FILE):
        if not (folder / name).is_file():
            print(f"error: {folder / name} not found", file=sys.stderr)
            return 2
    model = TwinAutoencoder.from_dir(folder)
    try:
        original = load_image(args.src).image
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if min(original.size) < SCALE:
        print(f"error: the image must be at least {SCALE} px on each side", file=sys.stderr)
        return 2
    started = time.perf_counter()
    twin = make_twin(original, model)
    elapsed = time.perf_counter() - started
    twin.save(args.out)
    score = psnr(np.asarray(original), np.asarray(twin))
    print(
        f"{args.out}: {twin.width}x{twin.height}, PSNR {score:.2f} dB vs {args.src.name}, "
        f"{elapsed * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
