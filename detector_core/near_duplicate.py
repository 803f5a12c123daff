"""A 64-bit perceptual hash per image, so that the same picture is recognised when it comes
back resized, re-compressed, converted, lightly cropped or re-rendered with a border.

The hash is imagehash's DCT hash (`phash`) of the image with any uniform border trimmed
first (a screenshot or a re-render often adds one). Two hashes are compared by Hamming
distance; `chunks` splits a hash into four 16-bit parts so that a database can find every
hash within distance 3 by exact matches on indexed columns (pigeonhole: four parts and at
most three differing bits leave at least one part equal), without scanning every row.

What distance to accept was measured on ../shared/datasets (see cms_plugin/README.md).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_BITS = 64
CHUNK_BITS = 16
N_CHUNKS = HASH_BITS // CHUNK_BITS
# The largest distance that the four-part lookup is certain to find.
MAX_INDEXED_DISTANCE = N_CHUNKS - 1

# A line of the border is flat: its pixels span at most this many grey levels (0-255), and
# its mean is this close to the outermost line's (JPEG noise on a flat border stays within).
_FLAT_RANGE = 12
_SAME_COLOUR = 8
# Trim only where at least this share of each side is left: a picture on a plain background
# keeps its background.
_MIN_KEPT = 0.5
# Larger images are scaled down to this many pixels a side before they are hashed.
_WORKING_SIZE = 512
# An image is near-matched only when its hash carries information (`is_informative`): some
# detail at all (RMS of the low-frequency AC coefficients / 32), and this share of it varying
# along both axes. Chosen on ../shared/datasets (cms_plugin/README.md).
_MIN_DETAIL = 1.0
_MIN_TWO_AXES = 0.01


def _flat_lines(lines: np.ndarray) -> int:
    """How many of `lines` (rows of grey levels, outermost first) form one flat border."""
    spans = lines.max(axis=1) - lines.min(axis=1)
    means = lines.mean(axis=1)
    flat = (spans <= _FLAT_RANGE) & (np.abs(means - means[0]) <= _SAME_COLOUR)
    return int(np.argmin(flat)) if not flat.all() else len(flat)


def trim_border(image: Image.Image) -> Image.Image:
    """`image` without a frame: while all four sides have outer lines of one flat colour
    (a screenshot's margin, a border), they are cut, so that a frame around a picture with
    its own plain margin is cut down to where the original's margin is cut too."""
    grey = np.asarray(image.convert("L"), dtype=np.int16)
    top, left = 0, 0
    bottom, right = grey.shape
    for _ in range(4):
        part = grey[top:bottom, left:right]
        if part.shape[0] < 2 or part.shape[1] < 2:
            return image
        cut_top = _flat_lines(part)
        cut_bottom = _flat_lines(part[::-1])
        cut_left = _flat_lines(part.T)
        cut_right = _flat_lines(part.T[::-1])
        if not (cut_top and cut_bottom and cut_left and cut_right):
            # Only a frame on all four sides: an edge that merely runs into a plain
            # background (a sky, a studio wall) would be cut differently after each
            # re-compression.
            break
        top, bottom = top + cut_top, bottom - cut_bottom
        left, right = left + cut_left, right - cut_right
        if bottom - top < grey.shape[0] * _MIN_KEPT or right - left < grey.shape[1] * _MIN_KEPT:
            return image
    if (top, left, bottom, right) == (0, 0, *grey.shape):
        return image
    return image.crop((left, top, right, bottom))


def _prepared(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    if max(image.size) > _WORKING_SIZE:
        # The hash looks at 32x32 pixels; trimming need not read 64 megapixels to find a frame.
        image = image.copy()
        image.thumbnail((_WORKING_SIZE, _WORKING_SIZE), Image.LANCZOS)
    return trim_border(image)


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit perceptual hash of a decoded image, as an unsigned integer."""
    import imagehash

    return int(str(imagehash.phash(_prepared(image))), 16)


def is_informative(image: Image.Image) -> bool:
    """Whether the hash of `image` tells it from other pictures. A flat image (a mask, a
    blank page) hashes to the same bits as every other flat one, and a plain gradient or a
    striped flag (variation along one axis only) to those of every similar one: on
    ../shared/datasets they made nearly all wrong matches. Such images are matched by their
    exact bytes only. Measured on the same 32x32 DCT the hash is taken from."""
    import scipy.fftpack

    pixels = np.asarray(_prepared(image).convert("L").resize((32, 32), Image.LANCZOS), dtype=float)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)[:8, :8]
    ac = dct.copy()
    ac[0, 0] = 0.0
    energy = float((ac**2).sum())
    if np.sqrt(energy) / 32 < _MIN_DETAIL:
        return False
    # The share of the low-frequency energy that varies along both axes at once.
    return float((dct[1:, 1:] ** 2).sum()) / energy >= _MIN_TWO_AXES


def informative_hash(image: Image.Image) -> int | None:
    """The perceptual hash of `image`, or None where it would not tell it from others."""
    return perceptual_hash(image) if is_informative(image) else None


def hash_bytes(data: bytes) -> int | None:
    """The perceptual hash of encoded image bytes, decoded as the scorer decodes them
    (EXIF orientation applied, first frame), None for an image whose hash tells nothing
    (`is_informative`). Raises `detector_core.errors.ImageError`."""
    from .intake import decode_image

    return informative_hash(decode_image(data).image)


def distance(a: int, b: int) -> int:
    """The Hamming distance of two hashes: how many of the 64 bits differ."""
    return (a ^ b).bit_count()


def chunks(value: int) -> tuple[int, ...]:
    """The four 16-bit parts of a hash, most significant first, each 0-65535."""
    mask = (1 << CHUNK_BITS) - 1
    return tuple((value >> (CHUNK_BITS * (N_CHUNKS - 1 - i))) & mask for i in range(N_CHUNKS))


def to_signed(value: int) -> int:
    """A 64-bit hash as a signed 64-bit integer (how a database's bigint stores it)."""
    return value - (1 << HASH_BITS) if value >= 1 << (HASH_BITS - 1) else value


def from_signed(value: int) -> int:
    return value + (1 << HASH_BITS) if value < 0 else value
