"""AUTOMATIC1111's "stealth" PNG info: generation settings hidden in the pixels' lowest bits.

The stealth-pnginfo extension (also used by NovelAI) writes, column by column (x outer,
y inner), one bit per pixel into the alpha channel's lowest bit ("alpha" mode) or three bits
per pixel into R, G and B ("rgb" mode):

    15-byte signature | 32-bit payload length in bits | payload (gzip'd when "...comp")

signatures: stealth_pnginfo / stealth_pngcomp (alpha), stealth_rgbinfo / stealth_rgbcomp (rgb).
Only lossless files can carry it, so only PNG and WebP are checked, up to 16 MP (files with
alpha are decoded again here, since the verdict's RGB copy has lost it). Reading is vectorised
and touches only the columns the payload needs; the payload is capped at 1 MiB.
"""

from __future__ import annotations

import io
import logging

import numpy as np
from PIL import Image

from .containers import MAX_BLOCK, Metadata, inflate
from .evidence import Evidence, Strength
from .generator_params import generator_evidence, parse_generator_text

log = logging.getLogger(__name__)

__all__ = ["read_stealth", "stealth_payload"]

MAX_PIXELS = 16_000_000  # larger files are not decoded a second time just for this check
_SIGNATURES = {
    b"stealth_pnginfo": ("alpha", False),
    b"stealth_pngcomp": ("alpha", True),
    b"stealth_rgbinfo": ("rgb", False),
    b"stealth_rgbcomp": ("rgb", True),
}
_HEADER_BITS = 15 * 8 + 32


def _bits(pixels: np.ndarray, n_bits: int) -> np.ndarray:
    """The first `n_bits` low bits of `pixels` (H, W) or (H, W, C), in column-major order."""
    height = pixels.shape[0]
    per_pixel = 1 if pixels.ndim == 2 else pixels.shape[2]
    n_pixels = -(-n_bits // per_pixel)
    n_cols = min(pixels.shape[1], -(-n_pixels // height))
    columns = pixels[:, :n_cols]
    order = (1, 0) if pixels.ndim == 2 else (1, 0, 2)
    return (np.ascontiguousarray(columns.transpose(order)).reshape(-1) & 1)[:n_bits]


def stealth_payload(pixels: np.ndarray, mode: str) -> tuple[str, str] | None:
    """(signature, text) hidden in `pixels` — (H, W) alpha or (H, W, 3) RGB, uint8 — or None."""
    available = pixels.size
    if available < _HEADER_BITS:
        return None
    header = _bits(pixels, _HEADER_BITS)
    signature = np.packbits(header[:120]).tobytes()
    found = _SIGNATURES.get(signature)
    if found is None or found[0] != mode:
        return None
    n_bits = int("".join(map(str, header[120:152].tolist())), 2)
    if n_bits <= 0 or n_bits > 8 * MAX_BLOCK or _HEADER_BITS + n_bits > available:
        log.debug("stealth header with an impossible payload length %d", n_bits)
        return None
    bits = _bits(pixels, _HEADER_BITS + n_bits)[_HEADER_BITS:]
    payload = np.packbits(bits).tobytes()
    if found[1]:
        payload = inflate(payload, MAX_BLOCK, wbits=31)  # gzip
        if not payload:
            return None
    return signature.decode("ascii"), payload.decode("utf-8", errors="replace")


def _pixels_with_alpha(data: bytes, fmt: str) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as im:
            if im.width * im.height > MAX_PIXELS:
                return None
            if im.mode not in ("RGBA", "LA", "PA", "RGBa") and "transparency" not in im.info:
                return np.asarray(im.convert("RGB"))
            return np.asarray(im.convert("RGBA"))
    except Exception:
        log.debug("could not decode pixels for the stealth check", exc_info=True)
        return None


def read_stealth(data: bytes, meta: Metadata, image: Image.Image | None) -> list[Evidence]:
    if meta.format not in ("PNG", "WEBP"):
        return []
    if meta.format == "WEBP" and not meta.webp_lossless_or_alpha:
        return []  # lossy compression keeps no low bits
    arr: np.ndarray | None
    if meta.format == "PNG" and not meta.png_may_have_alpha and image is not None:
        arr = np.asarray(image.convert("RGB")) if image.mode != "RGB" else np.asarray(image)
    else:
        arr = _pixels_with_alpha(data, meta.format)
    if arr is None or arr.ndim != 3:
        return []
    found = None
    where = ""
    if arr.shape[2] == 4:
        found = stealth_payload(arr[:, :, 3], "alpha")
        where = "PNG alpha-channel low bits (stealth pnginfo)"
    if found is None:
        found = stealth_payload(arr[:, :, :3], "rgb")
        where = "RGB low bits (stealth pnginfo)"
    if found is None:
        return []
    signature, text = found
    where = where.replace("PNG", meta.format.replace("WEBP", "WebP"))
    info = parse_generator_text(text)
    if info is not None:
        evidence = generator_evidence(info, where)
        return [
            Evidence(
                kind=evidence.kind,
                summary=evidence.summary,
                where=where,
                strength=evidence.strength,
                details={**evidence.details, "stealth_signature": signature},
            )
        ]
    return [
        Evidence(
            kind="generator_parameters",
            summary=(
                f"A '{signature}' block hidden in the pixels' low bits (a generator plug-in's "
                "marker), but its content is not recognisable generation settings."
            ),
            where=where,
            strength=Strength.WEAK_AI,
            details={"stealth_signature": signature, "text": text[:300]},
        )
    ]
