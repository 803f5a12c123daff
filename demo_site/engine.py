"""The one Detector per process, built from `settings.HUMANMADE`.

Detectors are cached by the settings they were built from, and the cache is dropped when
`HUMANMADE` changes (tests override it), so a view never scores with stale weights.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

if TYPE_CHECKING:  # torch loads on first use, not when Django starts
    from detector_core.detector import Detector

DEFAULTS: dict[str, Any] = {
    "WEIGHTS": None,  # None: $HUMANMADE_WEIGHTS, else the release committed in weights/
    "MAX_UPLOAD_BYTES": 20 * 1024 * 1024,
}

_detectors: dict[tuple[str | None, int], Detector] = {}
_lock = threading.Lock()


def humanmade_settings() -> dict[str, Any]:
    return {**DEFAULTS, **getattr(settings, "HUMANMADE", {})}


def max_upload_bytes() -> int:
    return int(humanmade_settings()["MAX_UPLOAD_BYTES"])


def get_detector() -> Detector:
    """The shared Detector for the current settings; weights load lazily, once."""
    conf = humanmade_settings()
    weights = None if conf["WEIGHTS"] is None else str(conf["WEIGHTS"])
    max_bytes = int(conf["MAX_UPLOAD_BYTES"])
    key = (weights, max_bytes)
    detector = _detectors.get(key)
    if detector is None:
        with _lock:
            detector = _detectors.get(key)
            if detector is None:
                from detector_core.detector import Detector
                from detector_core.fetch import FetchPolicy
                from detector_core.intake import IntakeLimits

                detector = Detector(
                    weights,
                    limits=IntakeLimits(max_bytes=max_bytes),
                    fetch_policy=FetchPolicy(max_bytes=max_bytes),
                )
                _detectors[key] = detector
    return detector


@receiver(setting_changed)
def _forget_detectors(*, setting: str, **kwargs: Any) -> None:
    if setting == "HUMANMADE":
        with _lock:
            _detectors.clear()


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f}".removesuffix(".0") + f" {unit}"
    return f"{n:,} bytes"
