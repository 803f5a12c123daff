"""humanmade's detection engine: decoding, the CNN, scoring, training and evaluation.

The public API is `Detector` (and the module-level `score` / `score_url` that use one shared
default Detector), the `Verdict` it returns, and the error types in `errors`.
"""

from .detector import Detector, default_detector, score, score_url
from .errors import FetchError, HumanmadeError, ImageError, WeightsError
from .verdict import Band, BandCutoffs, Verdict

__all__ = [
    "Band",
    "BandCutoffs",
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
