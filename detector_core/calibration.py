"""Turning raw network logits into probabilities that mean what they say.

Platt scaling (a temperature and a bias on the logit) fitted on held-out data: the network's
raw outputs are over-confident and trained on a class balance that is not the world's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Calibration:
    temperature: float = 1.0
    bias: float = 0.0

    def probability(self, logits: np.ndarray | float) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64) / self.temperature + self.bias
        return 1.0 / (1.0 + np.exp(-z))


def fit_calibration(
    logits: np.ndarray,
    targets: np.ndarray,
    max_iter: int = 200,
    sample_weights: np.ndarray | None = None,
) -> Calibration:
    """Minimise the log loss of sigmoid(logit / T + b) over T > 0 and b (training only);
    `sample_weights` weigh each example's loss (e.g. to give both classes equal weight)."""
    import torch

    x = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(targets, dtype=np.float64))
    w = None if sample_weights is None else torch.as_tensor(sample_weights, dtype=torch.float64)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t, bias], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            x / log_t.exp() + bias, y, weight=w
        )
        loss.backward()
        return loss

    opt.step(closure)
    return Calibration(temperature=float(log_t.detach().exp()), bias=float(bias.detach()))


def reliability_bins(
    probs: np.ndarray, targets: np.ndarray, bins: int = 10
) -> list[tuple[float, float, int]]:
    """(mean predicted probability, observed fraction positive, count) per non-empty bin."""
    probs, targets = np.asarray(probs, dtype=float), np.asarray(targets, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            out.append((float(probs[mask].mean()), float(targets[mask].mean()), int(mask.sum())))
    return out


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = 10) -> float:
    """Mean |observed − predicted| over equal-width probability bins, weighted by bin size."""
    total = len(np.asarray(probs))
    return float(
        sum(
            n / total * abs(seen - said) for said, seen, n in reliability_bins(probs, targets, bins)
        )
    )
