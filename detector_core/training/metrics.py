"""Threshold-free and thresholded metrics for a binary detector (AI = positive)."""

from __future__ import annotations

import numpy as np


def roc_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum statistic (ties count one half)."""
    targets, scores = np.asarray(targets), np.asarray(scores, dtype=float)
    n_pos, n_neg = int((targets == 1).sum()), int((targets == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=float)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[targets == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    targets, scores = np.asarray(targets), np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="mergesort")
    t, s = targets[order], scores[order]
    distinct = np.r_[np.where(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(t)[distinct]
    fps = np.cumsum(1 - t)[distinct]
    tpr = np.r_[0.0, tps / max(1, t.sum())]
    fpr = np.r_[0.0, fps / max(1, (1 - t).sum())]
    return fpr, tpr


def tpr_at_fpr(targets: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """Best true-positive rate with a false-positive rate no higher than `max_fpr`."""
    fpr, tpr = roc_curve(targets, scores)
    allowed = fpr <= max_fpr + 1e-12
    return float(tpr[allowed].max()) if allowed.any() else 0.0
