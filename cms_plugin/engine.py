"""The one Detector of this process, built from HUMANMADE (cms_plugin's only way to the engine).

Only detector_core's public API is used; its `HumanmadeError` messages are written for
people and shown as they are. `forget_detector` runs when a test or a reload changes
HUMANMADE (connected in `CmsPluginConfig.ready`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .conf import humanmade_settings

if TYPE_CHECKING:
    from detector_core import Detector

_detector: Detector | None = None
_detector_lock = threading.Lock()


def get_detector() -> Detector:
    """One Detector per process, built from HUMANMADE; rebuilt when the setting changes."""
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                from detector_core import BandCutoffs, Detector
                from detector_core.fetch import FetchPolicy
                from detector_core.intake import IntakeLimits

                conf = humanmade_settings
                _detector = Detector(
                    conf.WEIGHTS,
                    # None: the cut-offs shipped with the weights, made for their calibration.
                    cutoffs=None if conf.CUTOFFS is None else BandCutoffs(**conf.CUTOFFS),
                    limits=IntakeLimits(max_bytes=int(conf.MAX_UPLOAD_BYTES)),
                    fetch_policy=FetchPolicy(
                        max_bytes=int(conf.MAX_UPLOAD_BYTES),
                        allow_hosts=frozenset(conf.URL_ALLOW_HOSTS),
                    ),
                    device=conf.DEVICE,
                )
    return _detector


def video_limits() -> Any:
    """detector_core's VideoLimits with HUMANMADE["VIDEO_LIMITS"] over them; a clip is never
    larger than MAX_UPLOAD_BYTES, which bounds every upload."""
    from detector_core.video import VideoLimits

    conf = humanmade_settings
    return VideoLimits(**{"max_bytes": int(conf.MAX_UPLOAD_BYTES), **conf.VIDEO_LIMITS})


def forget_detector() -> None:
    global _detector
    with _detector_lock:
        _detector = None
