"""The fitting steps of `humanmade fuse`: logistic fits, fusion, cross-fitting, the cut-off."""

from __future__ import annotations

import numpy as np
import pytest

from detector_core.training.clip_head import (
    ALL_BLOCKS,
    HeadConfig,
    best_config,
    choose_config,
    fit_head,
    fit_logistic,
    head_logits,
)
from detector_core.training.data import ManifestRow
from detector_core.training.fuse import choose_ai_cutoff, crossfit, fit_fusion, parse_head
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
    feats = rng.normal(size=(300, 2, 12, 768)).astype(np.float32)
    y = rng.integers(0, 2, 300).astype(float)
    feats[:, 1, 11, 5] += 2.0 * y  # the last block's mean patch token carries the label
    config = HeadConfig((11,), 1e-2)
    head = fit_head(feats, y, np.ones(300), config)
    assert roc_auc(y, head_logits(head, config.blocks, feats)) > 0.9
    assert abs(head.patch_weight[5]) == pytest.approx(np.abs(head.patch_weight).max())


def _tokens(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2, 12, 768) token summaries, strongly correlated (low rank) as real CLIP tokens
    are; iid noise in 18,432 dimensions would drown any linear head fitted on 300 images."""
    basis = rng.normal(size=(8, 2 * 12 * 768))
    feats = (rng.normal(size=(n, 8)) @ basis).reshape(n, 2, 12, 768)
    return (feats + 0.1 * rng.normal(size=feats.shape)).astype(np.float32)


def test_a_head_on_every_block_finds_a_signal_in_an_early_block() -> None:
    rng = np.random.default_rng(4)
    feats = _tokens(rng, 400)
    y = rng.integers(0, 2, 400).astype(float)
    feats[:, 0, 3, 7] += 4.0 * y  # only block 3's class token carries the label
    fit, held = slice(0, 300), slice(300, 400)
    every, last = HeadConfig(ALL_BLOCKS, 1.0), HeadConfig((11,), 1.0)
    head = fit_head(feats[fit], y[fit], np.ones(300), every)
    assert head.n_blocks == 12 and head.cls_weight.shape == (12 * 768,)
    assert int(np.abs(head.cls_weight).argmax()) == 3 * 768 + 7
    seen = roc_auc(y[held], head_logits(head, every.blocks, feats[held]))
    blind = fit_head(feats[fit], y[fit], np.ones(300), last)
    unseen = roc_auc(y[held], head_logits(blind, last.blocks, feats[held]))
    assert seen > 0.7 and unseen < 0.65, (seen, unseen)


def test_patch_scale_shrinks_the_patch_weights() -> None:
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(200, 2, 12, 768)).astype(np.float32)
    y = rng.integers(0, 2, 200).astype(float)
    feats[:, 1, 11, 9] += 1.5 * y
    full = fit_head(feats, y, np.ones(200), HeadConfig((11,), 0.1, 1.0))
    scaled = fit_head(feats, y, np.ones(200), HeadConfig((11,), 0.1, 0.3))
    assert abs(scaled.patch_weight[9]) < abs(full.patch_weight[9])


def test_config_search_is_grouped_by_source_and_picks_the_informative_blocks() -> None:
    rng = np.random.default_rng(6)
    n = 240
    feats = _tokens(rng, n)[:, None]  # one view per image
    y = rng.integers(0, 2, n).astype(float)
    feats[:, 0, 0, 2, 1] += 4.0 * y  # block 2 carries the label; the last block does not
    sources = [f"source-{i % 12}" for i in range(n)]
    grid = [HeadConfig((11,), 1.0), HeadConfig(ALL_BLOCKS, 1.0)]
    rows = choose_config(feats, y, np.ones(n), sources, grid, progress=False)
    assert [r["blocks"] for r in rows] == [[11], list(ALL_BLOCKS)]
    assert rows[1]["oof_auc"] > 0.7 and rows[0]["oof_auc"] < 0.65, rows
    assert best_config(rows) == grid[1]


def test_head_option_is_parsed_or_refused() -> None:
    assert parse_head("all:0.3:1") == HeadConfig(ALL_BLOCKS, 0.3, 1.0)
    assert parse_head("9,11:1:0.5") == HeadConfig((9, 11), 1.0, 0.5)
    with pytest.raises(ValueError, match="BLOCKS:L2:PATCH_SCALE"):
        parse_head("all:0.3")


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
