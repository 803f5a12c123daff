"""The figures `humanmade fuse` reports beside a release: every one held out by source.

- `block_study`: which of CLIP's blocks carry the signal (a head per block, and heads on all
  blocks), trained on `train`, measured on the images no head saw (shared `val`, corpus `val`).
- `loso_report`: the chosen head refitted without each generator family, scored on it.
- `marginal_value`: the fusion cross-fitted with and without each expert.
- `photo_report`: the same figures on photographic content (`photo`, `face`) alone, with
  the human false positives of real photographs beside them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from ..experts.clip import BLOCKS, LAST_BLOCK
from ..verdict import BandCutoffs
from .clip_head import ALL_BLOCKS, HeadConfig, head_logits
from .loso import family_of
from .metrics import roc_auc, tpr_at_fpr

PHOTO_CONTENT = ("photo", "face")


def subset_report(targets: np.ndarray, probs: np.ndarray, cutoffs: BandCutoffs) -> dict:
    """Counts, ranking and band shares of one subset (probabilities already calibrated)."""
    human, ai = targets == 0, targets == 1
    out = {"n_ai": int(ai.sum()), "n_human": int(human.sum())}
    if ai.any() and human.any():
        out["auc"] = roc_auc(targets, probs)
        out["tpr_at_1pct_fpr"] = tpr_at_fpr(targets, probs, 0.01)
        out["tpr_at_5pct_fpr"] = tpr_at_fpr(targets, probs, 0.05)
    if ai.any():
        out["ai_at_likely_ai"] = float((probs[ai] >= cutoffs.ai).mean())
        out["ai_at_likely_human"] = float((probs[ai] < cutoffs.human).mean())
    if human.any():
        out["human_at_likely_ai"] = float((probs[human] >= cutoffs.ai).mean())
        out["human_at_likely_ai_count"] = int((probs[human] >= cutoffs.ai).sum())
        out["human_at_likely_human"] = float((probs[human] < cutoffs.human).mean())
    return out


def _ranking(targets: np.ndarray, scores: np.ndarray) -> dict:
    if len(np.unique(targets)) < 2:
        return {"n": len(targets)}
    return {
        "n_ai": int(targets.sum()),
        "n_human": int((targets == 0).sum()),
        "auc": roc_auc(targets, scores),
        "tpr_at_1pct_fpr": tpr_at_fpr(targets, scores, 0.01),
        "tpr_at_5pct_fpr": tpr_at_fpr(targets, scores, 0.05),
    }


def block_study(
    fit: Callable[[HeadConfig], object],
    held_out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    l2: float,
    progress: bool = True,
) -> list[dict]:
    """A head per block alone and heads on all blocks, each measured on the held-out sets.

    `fit(config)` returns a head trained on `train`; `held_out` maps a set's name to
    (features (N, 2, 12, 768), targets, photo mask).
    """
    configs = [HeadConfig((b,), l2) for b in range(BLOCKS)] + [
        HeadConfig(ALL_BLOCKS, l2, 0.0),  # class tokens of every block
        HeadConfig(ALL_BLOCKS, l2, 1.0),  # class and mean patch tokens of every block
    ]
    names = {(LAST_BLOCK,): "last block (v0.2.0's head)"}
    rows = []
    for config in configs:
        head = fit(config)
        label = (
            names.get(config.blocks, config.label)
            if len(config.blocks) == 1
            else (
                "class token of all blocks"
                if config.patch_scale == 0
                else "class + patch, all blocks"
            )
        )
        row: dict = {"features": label, **config.to_dict()}
        for name, (feats, targets, photo) in held_out.items():
            scores = head_logits(head, config.blocks, feats)
            row[name] = _ranking(targets, scores)
            row[f"{name} photo/face"] = _ranking(targets[photo], scores[photo])
        rows.append(row)
        if progress:
            first = next(iter(held_out))
            print(f"   blocks study {label}: {first} AUC {row[first].get('auc', float('nan')):.3f}")
    return rows


def loso_report(
    train_families: Sequence[str | None],
    fit_without: Callable[[np.ndarray], tuple[object, HeadConfig]],
    train_feats: np.ndarray,
    humans: tuple[np.ndarray, np.ndarray],
    photo: np.ndarray,
    min_images: int = 10,
    progress: bool = True,
) -> list[dict]:
    """The head refitted without each generator family of `train`, scored on that family
    against held-out human images (`humans`: features and a photo mask of them).

    `photo`: which train rows are photographic, for the family's photo-only figure.
    """
    families: dict[str, list[int]] = defaultdict(list)
    for j, family in enumerate(train_families):
        if family:
            families[family].append(j)
    human_feats, human_photo = humans
    out = []
    for family, held in sorted(families.items()):
        if len(held) < min_images:
            continue
        keep = np.ones(len(train_families), bool)
        keep[held] = False
        head, config = fit_without(keep)
        ai_scores = head_logits(head, config.blocks, train_feats[held, 0])
        human_scores = head_logits(head, config.blocks, human_feats)
        row = {
            "family": family,
            "held_out_ai": len(held),
            "val_human": len(human_feats),
            **_ranking(
                np.r_[np.ones(len(held)), np.zeros(len(human_scores))],
                np.r_[ai_scores, human_scores],
            ),
        }
        held_photo = photo[held]
        if held_photo.sum() >= min_images:
            row["photo"] = _ranking(
                np.r_[np.ones(int(held_photo.sum())), np.zeros(int(human_photo.sum()))],
                np.r_[ai_scores[held_photo], human_scores[human_photo]],
            )
        out.append(row)
        if progress:
            print(f"   LOSO {family}: AUC {row['auc']:.3f}", flush=True)
    return out


def family_of_row(generator: str, source_group: str, domain: str) -> str | None:
    """The generator family a train row's AI image belongs to (corpus rows: their source)."""
    return family_of(generator) or (source_group if domain == "corpus" else None)


def marginal_value(
    crossfit: Callable[[dict[str, np.ndarray]], np.ndarray],
    logits: dict[str, np.ndarray],
    targets: np.ndarray,
    masks: dict[str, np.ndarray],
) -> dict:
    """Cross-fitted figures of the fusion of every subset of experts that drops one."""
    out = {}
    names = sorted(logits)
    combos = [tuple(names)] + [tuple(n for n in names if n != drop) for drop in names]
    for combo in dict.fromkeys(c for c in combos if c):
        fused = crossfit({n: logits[n] for n in combo})
        out["+".join(combo)] = {
            where: _ranking(targets[m], fused[m]) for where, m in masks.items() if m.any()
        }
    return out
