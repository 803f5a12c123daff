"""`read_evidence`: run every provenance reader on one image and collect what they find."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PIL import Image

from .c2pa_reader import read_c2pa
from .containers import parse_container
from .evidence import Evidence, Strength
from .exif import read_exif
from .generator_params import read_generator_params
from .stealth import read_stealth
from .watermark import MIN_SIDE, read_watermark
from .xmp import read_xmp

log = logging.getLogger(__name__)

__all__ = ["MAX_EVIDENCE", "read_evidence"]

MAX_EVIDENCE = 24
_ORDER = {Strength.STRONG_AI: 0, Strength.INVALID: 1, Strength.WEAK_AI: 2, Strength.CONTEXT: 3}


def read_evidence(
    data: bytes | bytearray | memoryview, image: Image.Image | None = None
) -> tuple[Evidence, ...]:
    """Everything the file says about its origin, strongest first.

    `data` is the original encoded file (metadata lives there; pass b"" when there is none,
    e.g. for a PIL image handed over directly). `image` is its decoded RGB picture
    (`DecodedImage.image`), used for the pixel watermark; without it the pixels are decoded
    here when needed. Bad or hostile metadata never raises: each reader is isolated, and a
    reader that fails contributes nothing (logged at debug level). Every block parsed is
    capped at 1 MiB and every walk is bounded, so the cost stays small.
    """
    data = bytes(data) if not isinstance(data, bytes) else data
    meta = parse_container(data)
    if meta.skipped:
        log.debug("provenance: ignored oversized blocks: %s", "; ".join(meta.skipped[:5]))
    pixels = _LazyPixels(data, image)

    readers: list[tuple[str, Callable[[], list[Evidence]]]] = []
    if data:
        readers += [
            ("c2pa", lambda: read_c2pa(data, meta)),
            ("xmp", lambda: read_xmp(meta)),
            ("exif", lambda: read_exif(data, meta)),
            ("generator parameters", lambda: read_generator_params(meta)),
            ("stealth pnginfo", lambda: read_stealth(data, meta, image)),
        ]
    readers.append(("watermark", lambda: read_watermark(pixels.get())))

    found: list[Evidence] = []
    for name, reader in readers:
        try:
            found.extend(reader())
        except Exception:  # a reader bug on hostile input must not cost the verdict
            log.debug("provenance reader %r failed", name, exc_info=True)
    unique = list({(e.kind, e.where, e.summary): e for e in found}.values())
    unique.sort(key=lambda e: _ORDER[e.strength])
    return tuple(unique[:MAX_EVIDENCE])


class _LazyPixels:
    """The RGB picture, decoded from `data` only if a pixel reader asks and none was given."""

    def __init__(self, data: bytes, image: Image.Image | None) -> None:
        self._data = data
        self._image = image
        self._tried = image is not None or not data

    def get(self) -> Image.Image | None:
        if not self._tried:
            self._tried = True
            try:
                from detector_core.intake import decode_image

                decoded = decode_image(self._data)
                if decoded.width >= MIN_SIDE and decoded.height >= MIN_SIDE:
                    self._image = decoded.image
            except Exception:
                log.debug("provenance: pixels could not be decoded", exc_info=True)
        return self._image
