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
# JPEG stores each side in 16 bits and libjpeg refuses sides over 65,500 px; longer images
# are re-saved in strips whose edges fall on the 16-px block grid, so that every 8×8 block
# is compressed as it would be in one piece.
JPEG_MAX_SIDE = 65_500
_STRIP = JPEG_MAX_SIDE - JPEG_MAX_SIDE % 16


def _resave_jpeg(image: Image.Image) -> np.ndarray:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    buf.seek(0)
    with Image.open(buf) as resaved:
        return np.asarray(resaved.convert("RGB"), dtype=np.uint8)


def jpeg_resave(image: Image.Image) -> np.ndarray:
    """RGB pixels of `image` re-saved as JPEG; any size, in strips past the format's limit."""
    width, height = image.size
    if max(width, height) <= JPEG_MAX_SIDE:
        return _resave_jpeg(image)
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, _STRIP):
        for left in range(0, width, _STRIP):
            box = (left, top, min(left + _STRIP, width), min(top + _STRIP, height))
            out[box[1] : box[3], box[0] : box[2]] = _resave_jpeg(image.crop(box))
    return out


def stability_variants(image: Image.Image) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 pixels) for a JPEG re-save and a bicubic downscale of the image."""
    jpeg = jpeg_resave(image)
    size = (max(1, round(image.width * RESCALE)), max(1, round(image.height * RESCALE)))
    scaled = np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.uint8)
    return [
        (f"re-saved as JPEG q{JPEG_QUALITY}", jpeg),
        (f"resized to {RESCALE:g}×", scaled),
    ]
