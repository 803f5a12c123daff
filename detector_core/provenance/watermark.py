"""Invisible watermarks of the Stable Diffusion reference code (invisible-watermark, dwtDct).

The reference scripts embed a fixed message with `imwatermark.WatermarkEncoder(...).encode(
bgr, "dwtDct")`: Stable Diffusion 1.x writes the bytes b"StableDiffusionV1" (the inpainting
model b"StableDiffusionV1-Inpainting"), 2.x b"SDV2", SDXL (Stability's `sgm` and diffusers) a
fixed 48-bit pattern. Some SDXL code hands the encoder RGB instead of BGR, so both channel
orders are tried.

How dwtDct works (imwatermark/maxDct.py): convert to YUV, take the Haar DWT of the U channel,
cut the LL band into 4×4 blocks in row-major order; block k carries bit k mod L of the
message as the residue of its largest-magnitude non-DC coefficient modulo 36 (above 18 is a
1). Decoding averages the votes of all blocks that carry the same bit.

This module re-implements that decoder in vectorised NumPy, exactly as the library computes
it (cross-checked against `imwatermark.WatermarkDecoder` in the tests), because the library
decodes block by block in Python (seconds per megapixel, once per message length) and
returns only bits. Here every block is scored once, each candidate message is a `bincount`,
and the result carries the match quality: the fraction of bits that agree and the chance of
that much agreement in an unmarked image (a binomial tail). Images smaller than 256×256 are
skipped like the encoder skips them; large images are read from their top rows only (whole
block rows keep the bit alignment), so the cost is bounded. No match proves nothing: the
watermark is optional, and cropping, resizing or re-encoding destroys it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .evidence import Evidence, Strength

log = logging.getLogger(__name__)

__all__ = [
    "MIN_SIDE",
    "WATERMARKS",
    "WatermarkMatch",
    "block_bits",
    "decode_bits",
    "find_watermarks",
    "read_watermark",
]

MIN_SIDE = 256  # the encoder refuses images under 256×256 pixels
MAX_ANALYSED_PIXELS = 2_000_000  # rows beyond this are not read (the pattern repeats)
SCALE = 36  # imwatermark's default dwtDct scale for the U channel
BLOCK = 4
_HAAR = 0.7071067811865476  # pywt's Haar decomposition low-pass coefficient
STRONG_P = 1e-8  # chance agreement this unlikely (per candidate) is strong evidence
WEAK_P = 1e-5


def _bytes_bits(message: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(message, dtype=np.uint8))


_SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110

# name -> (who writes it, bits)
WATERMARKS: dict[str, tuple[str, np.ndarray]] = {
    "StableDiffusionV1": (
        "Stable Diffusion 1.x reference scripts",
        _bytes_bits(b"StableDiffusionV1"),
    ),
    "StableDiffusionV1-Inpainting": (
        "Stable Diffusion 1.x inpainting scripts",
        _bytes_bits(b"StableDiffusionV1-Inpainting"),
    ),
    "SDV2": ("Stable Diffusion 2.x reference scripts", _bytes_bits(b"SDV2")),
    "SDXL": (
        "SDXL (Stability AI generative-models / diffusers)",
        np.array([int(b) for b in bin(_SDXL_MESSAGE)[2:]], dtype=np.uint8),
    ),
}


@dataclass(frozen=True)
class WatermarkMatch:
    name: str
    writer: str
    channel_order: str  # "BGR" (as the reference scripts) or "RGB" (swapped, as some SDXL code)
    bits_total: int
    bits_matching: int
    p_value: float  # chance of at least this much agreement in an unmarked image
    n_blocks: int

    @property
    def accuracy(self) -> float:
        return self.bits_matching / self.bits_total


def _u_channel(bgr: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit BGR->YUV U channel, same fixed-point arithmetic (yuv_shift = 14)."""
    b = bgr[..., 0].astype(np.int32)
    g = bgr[..., 1].astype(np.int32)
    r = bgr[..., 2].astype(np.int32)
    y = (r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14
    u = ((b - y) * 8061 + (128 << 14) + (1 << 13)) >> 14
    return np.clip(u, 0, 255).astype(np.float64)


def block_bits(bgr: np.ndarray) -> np.ndarray:
    """The bit each 4×4 LL block votes for, in the library's block order (1-D uint8)."""
    rows, cols = bgr.shape[0] // 4 * 4, bgr.shape[1] // 4 * 4
    u = _u_channel(bgr[:rows, :cols])
    # Haar LL band as pywt.dwt2(u, "haar")[0] computes it, float operations in the same order
    # (rows, then columns), so that residues right at the 18/36 boundary vote the same way.
    c = _HAAR
    rows_lo = u[0::2] * c + u[1::2] * c
    ll = rows_lo[:, 0::2] * c + rows_lo[:, 1::2] * c
    n_r, n_c = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    blocks = (
        ll[: n_r * BLOCK, : n_c * BLOCK]
        .reshape(n_r, BLOCK, n_c, BLOCK)
        .transpose(0, 2, 1, 3)
        .reshape(n_r * n_c, BLOCK * BLOCK)
    )
    pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1  # largest non-DC coefficient
    val = np.abs(blocks[np.arange(len(blocks)), pos])
    return (np.mod(val, SCALE) > 0.5 * SCALE).astype(np.uint8)


def decode_bits(votes: np.ndarray, length: int) -> np.ndarray:
    """The message bits of a given length from block votes (the library's majority rule)."""
    index = np.arange(len(votes)) % length
    ones = np.bincount(index, weights=votes, minlength=length)
    counts = np.bincount(index, minlength=length)
    mean = np.divide(ones, counts, out=np.zeros(length), where=counts > 0)
    return (mean * 255 > 127).astype(np.uint8)


def binomial_tail(n: int, k: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0**n


def _analysed_rows(height: int, width: int) -> int:
    rows = max(MIN_SIDE, MAX_ANALYSED_PIXELS // max(width, 1))
    return min(height, rows // 8 * 8 if rows < height else height)


def find_watermarks(rgb: np.ndarray) -> list[WatermarkMatch]:
    """Best match for each known message in an (H, W, 3) uint8 RGB array, best first."""
    height, width = rgb.shape[:2]
    if height < MIN_SIDE or width < MIN_SIDE:
        return []
    rgb = rgb[: _analysed_rows(height, width)]
    matches = []
    orders = {"BGR": rgb[..., ::-1], "RGB": rgb}  # the encoder expects BGR
    votes = {order: block_bits(pixels) for order, pixels in orders.items()}
    for name, (writer, expected) in WATERMARKS.items():
        best = None
        for order, v in votes.items():
            if len(v) < len(expected):
                continue
            agree = int((decode_bits(v, len(expected)) == expected).sum())
            if best is None or agree > best[1]:
                best = (order, agree, len(v))
        if best is None:
            continue
        order, agree, n_blocks = best
        # two channel orders were tried: count both chances
        p = min(1.0, 2 * binomial_tail(len(expected), agree))
        matches.append(WatermarkMatch(name, writer, order, len(expected), agree, p, n_blocks))
    return sorted(matches, key=lambda m: m.p_value)


def read_watermark(image: Image.Image | None) -> list[Evidence]:
    if image is None or image.width < MIN_SIDE or image.height < MIN_SIDE:
        return []
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    matches = find_watermarks(rgb)
    # Only the best candidate is reported: the messages share structure (ASCII bytes, a common
    # prefix), so an image carrying one of them agrees with the others more than chance would.
    if not matches or matches[0].p_value > WEAK_P:
        return []
    match = matches[0]
    strong = match.p_value <= STRONG_P
    quality = f"{match.bits_matching}/{match.bits_total} bits match"
    return [
        Evidence(
            kind="watermark",
            summary=(
                f"Invisible watermark '{match.name}' of the {match.writer} decoded from the "
                f"pixels ({quality}"
                + ("" if strong else "; a partial match, possibly degraded")
                + ")."
            ),
            where="pixels (dwtDct, invisible-watermark)",
            strength=Strength.STRONG_AI if strong else Strength.WEAK_AI,
            details={
                "watermark": match.name,
                "writer": match.writer,
                "bits_matching": match.bits_matching,
                "bits_total": match.bits_total,
                "bit_accuracy": round(match.accuracy, 4),
                "p_value": float(f"{match.p_value:.3g}"),
                "channel_order": match.channel_order,
                "blocks_read": match.n_blocks,
            },
        )
    ]
