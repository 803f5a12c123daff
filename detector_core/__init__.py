"""humanmade's detection engine: decoding, the CNN, scoring, training and evaluation.

The public API is `Detector` (and the module-level `score` / `score_url` that use one shared
default Detector), the `Verdict` it returns, and the error types in `errors`.

Names are imported on first use, so that `import detector_core.errors` (say, in a web
process that only queues work for a GPU worker) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Detector": ".detector",
    "default_detector": ".detector",
    "score": ".detector",
    "score_url": ".detector",
    "FetchError": ".errors",
    "HumanmadeError": ".errors",
    "ImageError": ".errors",
    "WeightsError": ".errors",
    "Band": ".verdict",
    "BandCutoffs": ".verdict",
    "DecidedBy": ".verdict",
    "Verdict": ".verdict",
}

__all__ = [
    "Band",
    "BandCutoffs",
    "DecidedBy",
    "Detector",
    "FetchError",
    "HumanmadeError",
    "ImageError",
    "Verdict",
    "WeightsError",
    "default_detector",
    "score",
    "score_url",
]

if TYPE_CHECKING:
    from .detector import Detector, default_detector, score, score_url
    from .errors import FetchError, HumanmadeError, ImageError, WeightsError
    from .verdict import Band, BandCutoffs, DecidedBy, Verdict


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'detector_core' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
