"""How a clip's frame probabilities become the clip's probability.

A rule is a statistic of the frames' calibrated logits (logit(p) of each frame's
`ai_probability`) followed by a Platt scaling, sigmoid(statistic / temperature + bias).
A release's rule is fitted on labelled clips by `humanmade video-eval --rule-out` and kept
beside its weights as `<weights>.video.json`, tied to the weights' sha256. Without that
file (or when it belongs to other weights) the rule is the unfitted one: the mean of the
frames' logits with the image calibration as it is.

Why a mean-like statistic and never the maximum: the maximum over N frames rises with N on
a human clip (more frames, more chances of one false alarm), so long human clips would
look more AI-made than short ones.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import WeightsError

__all__ = ["STATISTICS", "UNFITTED", "ClipRule", "frame_logits", "load_rule", "rule_path"]

TOP_K = 3


def _top_mean(values: Sequence[float]) -> float:
    top = sorted(values, reverse=True)[:TOP_K]
    return sum(top) / len(top)


STATISTICS: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": statistics.fmean,
    "median": statistics.median,
    f"top{TOP_K}": _top_mean,
}


def frame_logits(probabilities: Sequence[float]) -> list[float]:
    """logit(p) of each frame probability, clamped away from 0 and 1."""
    return [math.log(q / (1.0 - q)) for q in (min(max(p, 1e-6), 1 - 1e-6) for p in probabilities)]


@dataclass(frozen=True)
class ClipRule:
    statistic: str = "mean"
    temperature: float = 1.0
    bias: float = 0.0
    # What it was fitted on ("" for the unfitted rule), for the verdict's `rule` text.
    fitted_on: str = ""

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"unknown clip statistic {self.statistic!r}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError("the clip rule's temperature must be a positive number")
        if not math.isfinite(self.bias):
            raise ValueError("the clip rule's bias must be a finite number")

    def logit(self, probabilities: Sequence[float]) -> float:
        if not probabilities:
            raise ValueError("no frame probabilities")
        return STATISTICS[self.statistic](frame_logits(probabilities)) / self.temperature + (
            self.bias
        )

    def probability(self, probabilities: Sequence[float]) -> float:
        z = self.logit(probabilities)
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def describe(self) -> str:
        what = "mean" if self.statistic == "mean" else self.statistic.replace("top", "top-")
        if not self.fitted_on:
            return f"{what} of frame logits, image calibration (not fitted on video)"
        if (self.temperature, self.bias) == (1.0, 0.0):
            return f"{what} of frame logits, image calibration (checked on {self.fitted_on})"
        return (
            f"{what} of frame logits, calibrated on labelled clips (T={self.temperature:.3g}, "
            f"b={self.bias:+.3g}; {self.fitted_on})"
        )


UNFITTED = ClipRule()


def rule_path(weights_path: Path) -> Path:
    """`weights/humanmade-0.3.0.safetensors` → `weights/humanmade-0.3.0.video.json`."""
    return weights_path.with_name(weights_path.name.removesuffix(".safetensors") + ".video.json")


def save_rule(rule: ClipRule, weights_path: Path, weights_sha256: str, path: Path) -> None:
    """Write the rule file for these weights."""
    data = {"weights": weights_path.name, "weights_sha256": weights_sha256, **asdict(rule)}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def load_rule(weights_path: Path, weights_sha256: str) -> ClipRule:
    """The rule kept beside these weights; the unfitted rule when there is none or it was
    fitted for other weights. A rule file that cannot be read is an error, not a silent
    fallback: someone put it there to be used."""
    path = rule_path(weights_path)
    if not path.is_file():
        return UNFITTED
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("weights_sha256") != weights_sha256:
            return UNFITTED
        return ClipRule(
            statistic=str(data["statistic"]),
            temperature=float(data["temperature"]),
            bias=float(data["bias"]),
            fitted_on=str(data.get("fitted_on", "")) or "labelled clips",
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"The clip rule file {path} cannot be read: {exc}") from None
