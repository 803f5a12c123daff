"""Copies of an image that a trustworthy score should survive.

A verdict that flips when an image is merely re-saved or resized is telling us about the
file, not about how the picture was made; such verdicts are marked unstable.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

JPEG_QUALITY = 90
RESCALE = 0.75


def stability_variants(image: Image.Image) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 pixels) for a JPEG re-save and a bicubic downscale of the image."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    buf.seek(0)
    with Image.open(buf) as resaved:
        jpeg = np.asarray(resaved.convert("RGB"), dtype=np.uint8)
    size = (max(1, round(image.width * RESCALE)), max(1, round(image.height * RESCALE)))
    scaled = np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.uint8)
    return [
        (f"re-saved as JPEG q{JPEG_QUALITY}", jpeg),
        (f"resized to {RESCALE:g}×", scaled),
    ]
