"""The demo's Detector and upload limit: those of `cms_plugin`, built from `HUMANMADE`.

The page and the review queue share one Detector, so the weights are in memory once, and
`cms_plugin.conf` stays the only reader of the settings dict (it rebuilds the Detector when
`HUMANMADE` changes, as tests do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cms_plugin import services
from cms_plugin.conf import humanmade_settings

if TYPE_CHECKING:  # torch loads on first use, not when Django starts
    from detector_core.detector import Detector


def max_upload_bytes() -> int:
    return int(humanmade_settings.MAX_UPLOAD_BYTES)


def get_detector() -> Detector:
    """The shared Detector for the current settings; weights load lazily, once."""
    return services.get_detector()


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{n:,} bytes"
