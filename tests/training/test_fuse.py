"""The fitting steps of `humanmade fuse`: logistic fits, fusion, cross-fitting, the cut-off."""

from __future__ import annotations

import numpy as np
import pytest

from detector_core.training.data import ManifestRow
from detector_core.training.fuse import (
    choose_ai_cutoff,
    crossfit,
    fit_fusion,
    fit_head,
    fit_logistic,
    head_logits,
)
from detector_core.training.metrics import roc_auc


def test_logistic_fit_separates_and_regularisation_shrinks() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + 0.1 * rng.normal(size=200) > 0).astype(float)
    w = np.ones(200)
    coef, _ = fit_logistic(x, y, w, l2=1e-4)
    assert abs(coef[0]) > 5 * max(abs(coef[1]), abs(coef[2]))
    strong, _ = fit_logistic(x, y, w, l2=10.0)
    assert abs(strong[0]) < abs(coef[0])


def test_head_learns_a_direction_in_token_space() -> None:
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(300, 2, 768)).astype(np.float32)
    y = rng.integers(0, 2, 300).astype(float)
    feats[:, 1, 5] += 2.0 * y  # the mean patch token carries the label
    head = fit_head(feats, y, np.ones(300), l2=1e-2)
    assert roc_auc(y, head_logits(head, feats)) > 0.9
    assert abs(head.patch_weight[5]) == pytest.approx(np.abs(head.patch_weight).max())


def test_fusion_weighs_the_informative_expert() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    logits = {"clip": 3.0 * y + rng.normal(size=400), "trace": rng.normal(size=400)}
    fusion = fit_fusion(logits, y, np.ones(400))
    weights = {e.name: e.weight for e in fusion.experts}
    assert weights["clip"] > 0.5 and abs(weights["trace"]) < 0.3
    folds = np.arange(400) % 4
    fused, per_expert = crossfit(folds, logits, y, np.ones(400))
    assert roc_auc(y, fused) > 0.9 and set(per_expert) == {"clip", "trace"}


def _row(content: str, label: str) -> ManifestRow:
    return ManifestRow("f", "val", label, "s", "", content)


def test_cut_off_holds_every_kind_with_enough_images() -> None:
    rows = [_row("photo", "human")] * 200 + [_row("painting", "human")] * 200
    probs = np.r_[np.linspace(0, 0.6, 200), np.linspace(0, 0.95, 200)]
    cut, rates = choose_ai_cutoff(rows, probs, max_fpr=0.01, floor=0.5)
    # 1 % of the paintings is 2 images: the cut-off must sit above the painting scores.
    assert rates["painting/drawing"]["likely_ai_rate"] <= 0.01
    assert (probs[200:] >= cut).mean() <= 0.01 and cut > 0.9
