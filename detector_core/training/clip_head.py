"""Fitting the CLIP expert's linear head on frozen per-block token summaries.

Features come from `clip_features`: for every (image, view) the class token and the mean
patch token of each of CLIP's 12 blocks, (2, 12, 768). A head reads some blocks (`HeadConfig`):
each token summary is standardised on the training rows, the patch part is scaled by
`patch_scale` (a smaller scale is a stronger penalty on the patch weights, which carry the
heatmap but generalise less well in probes), then one L2-regularised logistic regression.

Which blocks, patch scale and L2 strength is chosen by cross-validation grouped by source on
`train` alone (`choose_config`), never on the validation split or the sealed set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..experts.clip import BLOCKS, LAST_BLOCK, TOKENS, ClipHead
from .metrics import roc_auc, tpr_at_fpr

FOLDS = 5
ALL_BLOCKS = tuple(range(BLOCKS))


@dataclass(frozen=True)
class HeadConfig:
    blocks: tuple[int, ...]
    l2: float
    patch_scale: float = 1.0

    @property
    def label(self) -> str:
        if self.blocks == ALL_BLOCKS:
            which = "all blocks"
        elif len(self.blocks) == 1:
            which = f"block {self.blocks[0]}"
        else:
            which = "blocks " + ",".join(map(str, self.blocks))
        return f"{which}, L2 {self.l2:g}, patch scale {self.patch_scale:g}"

    def to_dict(self) -> dict:
        return {"blocks": list(self.blocks), "l2": self.l2, "patch_scale": self.patch_scale}


# The search: v0.2.0's head (last block) beside every block read, with the patch part at full
# and at reduced weight. Kept small: each fit is a logistic regression on 18,432 inputs, about
# a minute on two shared CPU cores, and the search makes five per config.
CONFIG_GRID = (
    HeadConfig((LAST_BLOCK,), 0.3),  # v0.2.0's head and L2, for comparison
    HeadConfig(ALL_BLOCKS, 0.3, 1.0),
    HeadConfig(ALL_BLOCKS, 1.0, 1.0),
    HeadConfig(ALL_BLOCKS, 0.3, 0.3),
)


def fit_logistic(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float, max_iter: int = 150
) -> tuple[np.ndarray, float]:
    """Weighted L2-regularised logistic regression (LBFGS): (coefficients, bias).

    float64 for small problems; float32 above a million inputs (a head on every block of
    thousands of views), where each LBFGS step would otherwise cost twice the time.
    """
    import torch

    dtype = torch.float32 if x.size > 10**6 else torch.float64
    xt = torch.as_tensor(x, dtype=dtype)
    yt = torch.as_tensor(y, dtype=dtype)
    wt = torch.as_tensor(weight / weight.sum(), dtype=dtype)
    coef = torch.zeros(x.shape[1], dtype=dtype, requires_grad=True)
    bias = torch.zeros((), dtype=dtype, requires_grad=True)
    opt = torch.optim.LBFGS([coef, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = xt @ coef + bias
        loss = (
            torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none") * wt
        ).sum() + 0.5 * l2 * (coef**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return coef.detach().double().numpy(), float(bias.detach())


def summaries(features: np.ndarray, blocks: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(class, mean patch) token summaries of `blocks`, each (N, B·768), from (N, 2, 12, 768)."""
    picked = features[:, :, list(blocks)]
    return picked[:, 0].reshape(len(features), -1), picked[:, 1].reshape(len(features), -1)


def fit_head(
    features: np.ndarray, y: np.ndarray, weight: np.ndarray, config: HeadConfig
) -> ClipHead:
    """A ClipHead over `config.blocks` from (N, 2, 12, 768) features."""
    cls, patch = summaries(features, config.blocks)
    cls_mean, cls_std = cls.mean(0), cls.std(0) + 1e-6
    patch_mean, patch_std = patch.mean(0), patch.std(0) + 1e-6
    x = np.concatenate(
        [(cls - cls_mean) / cls_std, config.patch_scale * (patch - patch_mean) / patch_std], axis=1
    )
    coef, bias = fit_logistic(x, y, weight, config.l2)
    width = len(config.blocks) * TOKENS
    return ClipHead(
        cls_mean=cls_mean.astype(np.float32),
        cls_std=cls_std.astype(np.float32),
        cls_weight=coef[:width].astype(np.float32),
        patch_mean=patch_mean.astype(np.float32),
        patch_std=patch_std.astype(np.float32),
        patch_weight=(coef[width:] * config.patch_scale).astype(np.float32),
        bias=bias,
    )


def head_logits(head: ClipHead, blocks: Sequence[int], features: np.ndarray) -> np.ndarray:
    """Image logits of (N, 2, 12, 768) features: what scoring computes from the same tokens."""
    cls, patch = summaries(features, blocks)
    return head.logits(cls, patch)


def source_folds(sources: Sequence[str], k: int = FOLDS) -> np.ndarray:
    """A fold per row, the same for every row of one source (by hash of its name)."""
    return np.array([hashlib.sha256(s.encode()).digest()[0] % k for s in sources])


def with_views(
    features: np.ndarray, targets: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every view as its own example, each image's weight shared by its views."""
    n, v = features.shape[:2]
    return (
        features.reshape(n * v, *features.shape[2:]),
        np.repeat(targets, v).astype(float),
        np.repeat(weight / v, v),
    )


def train_head(
    features: np.ndarray, targets: np.ndarray, weight: np.ndarray, config: HeadConfig
) -> ClipHead:
    """A head fitted on every view of (N, V, 2, 12, 768) features."""
    return fit_head(*with_views(features, targets, weight), config)


def choose_config(
    features: np.ndarray,
    targets: np.ndarray,
    weight: np.ndarray,
    sources: Sequence[str],
    grid: Sequence[HeadConfig] = CONFIG_GRID,
    progress: bool = True,
) -> list[dict]:
    """Out-of-fold figures (source folds) of each config on `train` rows.

    Fitted and scored on view 0 alone (what scoring sees): a fit on every block costs
    minutes on two CPU cores, and the search needs 5 per config; the final head then
    learns from every view.
    """
    features = features[:, :1]
    folds = source_folds(sources)
    out = []
    for config in grid:
        oof = np.zeros(len(targets))
        for f in range(FOLDS):
            fit, test = folds != f, folds == f
            head = train_head(features[fit], targets[fit], weight[fit], config)
            oof[test] = head_logits(head, config.blocks, features[test, 0])
        row = {
            **config.to_dict(),
            "label": config.label,
            "oof_auc": roc_auc(targets, oof),
            "oof_tpr_at_1pct_fpr": tpr_at_fpr(targets, oof, 0.01),
            "oof_tpr_at_5pct_fpr": tpr_at_fpr(targets, oof, 0.05),
        }
        out.append(row)
        if progress:
            print(
                f"   {config.label}: out-of-fold AUC {row['oof_auc']:.4f}, "
                f"TPR@1% {row['oof_tpr_at_1pct_fpr']:.3f}",
                flush=True,
            )
    return out


def best_config(rows: Sequence[dict]) -> HeadConfig:
    """The config with the best out-of-fold AUC."""
    best = max(rows, key=lambda r: r["oof_auc"])
    return HeadConfig(tuple(best["blocks"]), float(best["l2"]), float(best["patch_scale"]))
