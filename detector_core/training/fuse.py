"""`humanmade fuse`: train the CLIP head, fit the fusion, set the cut-offs, write a release.

The steps, and why each is held out the way it is:

1. Rows: the shared dataset and, if given, the registry corpus (`humanmade data build`),
   less reserved sources and sealed-set originals; at most `--cap` images per source.
2. The CLIP head is a logistic regression on frozen token summaries of every view of the
   `train` rows (both datasets), class- and source-balanced; its L2 strength is chosen by
   cross-validation grouped by source on `train` alone.
3. The fusion set is every image neither expert was trained on: the shared `val` split and
   the whole corpus (the trace network never saw it). Corpus `train` rows get out-of-fold
   CLIP logits (head fitted without their source's fold); `val` rows the final head's.
4. Per-expert calibration and fusion weights are fitted on the fusion set; every figure
   reported is cross-fitted (fitted on the other source folds, measured on the held one).
5. The `likely_ai` cut-off is the lowest at which at most `--max-human-fpr` of the human
   images of each kind (with enough images to tell) reach it, on cross-fitted probabilities.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..argtypes import fraction, int_at_least, report_error
from ..calibration import Calibration, fit_calibration
from ..detector import DEFAULT_MAX_TILES, image_logit
from ..experts.clip import DEFAULT_MAX_CROPS, ClipEncoder, ClipHead
from ..fusion import FusedExpert, Fusion
from ..intake import IntakeLimits, load_image
from ..model_files import CLIP_SHA256, cache_dir, file_sha256, require_clip_model
from ..verdict import BandCutoffs
from ..weights import ClipSpec, default_weights_path, load_weights, output_problem, save_weights
from .clip_features import FeatureCache, ImageRef, extract, features_dir
from .data import ManifestRow, balanced_weights, default_dataset_dir, read_manifest
from .evaluate import CONTENT_GROUPS, build_report, headline, write_plots
from .loso import family_of
from .metrics import roc_auc, tpr_at_fpr
from .sources import cap_per_source, usable

CORPUS_ENV = "HUMANMADE_CORPUS"
L2_GRID = (1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)
FOLDS = 5
TRAIN_BATCH = 8
# A kind's false-positive rate is only held to the limit where 1 % is at least one image.
MIN_HUMANS_PER_KIND = 100
_CPU = torch.device("cpu")


@dataclass(frozen=True)
class Item:
    row: ManifestRow
    path: Path
    sha256: str
    domain: str  # "dataset" or "corpus"

    @property
    def target(self) -> int:
        return self.row.target


# --------------------------------------------------------------------------- fitting


def fit_logistic(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float, max_iter: int = 300
) -> tuple[np.ndarray, float]:
    """Weighted L2-regularised logistic regression (LBFGS, float64): (coefficients, bias)."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    wt = torch.as_tensor(weight / weight.sum(), dtype=torch.float64)
    coef = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
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
    return coef.detach().numpy(), float(bias.detach())


def fit_head(features: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float) -> ClipHead:
    """A ClipHead from (N, 2, 768) features (class token, mean patch token)."""
    cls, patch = features[:, 0], features[:, 1]
    cls_mean, cls_std = cls.mean(0), cls.std(0) + 1e-6
    patch_mean, patch_std = patch.mean(0), patch.std(0) + 1e-6
    x = np.concatenate([(cls - cls_mean) / cls_std, (patch - patch_mean) / patch_std], axis=1)
    coef, bias = fit_logistic(x, y, weight, l2)
    return ClipHead(
        cls_mean=cls_mean.astype(np.float32),
        cls_std=cls_std.astype(np.float32),
        cls_weight=coef[:768].astype(np.float32),
        patch_mean=patch_mean.astype(np.float32),
        patch_std=patch_std.astype(np.float32),
        patch_weight=coef[768:].astype(np.float32),
        bias=bias,
    )


def head_logits(head: ClipHead, features: np.ndarray) -> np.ndarray:
    return head.logits(features[:, 0], features[:, 1])


def source_folds(items: Sequence[Item], k: int = FOLDS) -> np.ndarray:
    """A fold per item, the same for every item of one source (by hash of its name)."""
    return np.array([hashlib.sha256(i.row.source_group.encode()).digest()[0] % k for i in items])


def _views(features: np.ndarray, items: Sequence[Item], weight: np.ndarray):
    """Every view as its own training example, each image's weight shared by its views."""
    n, v = features.shape[:2]
    y = np.repeat([i.target for i in items], v).astype(float)
    return features.reshape(n * v, 2, 768), y, np.repeat(weight / v, v)


def train_head(items: Sequence[Item], features: np.ndarray, l2: float) -> ClipHead:
    weight = np.array(balanced_weights([i.row for i in items]))
    x, y, w = _views(features, items, weight)
    return fit_head(x, y, w, l2)


def choose_l2(items: Sequence[Item], features: np.ndarray, progress: bool = True) -> dict:
    """Mean out-of-fold AUC (source folds, view 0) of each L2 strength on `train` rows."""
    folds = source_folds(items)
    targets = np.array([i.target for i in items])
    scores = {}
    for l2 in L2_GRID:
        oof = np.zeros(len(items))
        for f in range(FOLDS):
            fit, test = folds != f, folds == f
            head = train_head([items[j] for j in np.where(fit)[0]], features[fit], l2)
            oof[test] = head_logits(head, features[test, 0])
        scores[l2] = roc_auc(targets, oof)
        if progress:
            print(f"   L2 {l2:g}: out-of-fold AUC {scores[l2]:.4f}", flush=True)
    return scores


# --------------------------------------------------------------------------- data


def load_items(dataset: Path, corpus: Path | None, cap: int) -> list[Item]:
    items = []
    sources = [(dataset, "dataset")] + ([(corpus, "corpus")] if corpus else [])
    for root, domain in sources:
        rows = cap_per_source(usable(read_manifest(root)), cap)
        items += [Item(r, root / r.file, file_sha256(root / r.file), domain) for r in rows]
    return items


def trace_logits(items: Sequence[Item], weights_path: Path, progress: bool = True) -> np.ndarray:
    """The trace network's raw image logits, as the Detector computes them; cached."""
    from tqdm import tqdm

    loaded = load_weights(weights_path)
    cache_path = cache_dir() / "features" / f"trace-{loaded.sha256[:12]}.json"
    cache: dict[str, float] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    limits = IntakeLimits()
    todo = [i for i in items if i.sha256 not in cache]

    def save() -> None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_path.with_suffix(".partial")
        partial.write_text(json.dumps(cache))
        os.replace(partial, cache_path)

    for n, item in enumerate(tqdm(todo, desc="trace logits", unit="img", disable=not progress)):
        pixels = np.asarray(load_image(item.path, limits).image, dtype=np.uint8)
        cache[item.sha256] = image_logit(
            loaded.model, pixels, loaded.tile_size, DEFAULT_MAX_TILES, _CPU
        )[0]
        if n % 200 == 199:  # an interrupted run keeps what it computed
            save()
    if todo:
        save()
    return np.array([cache[i.sha256] for i in items])


# --------------------------------------------------------------------------- fusion


def fit_fusion(logits: dict[str, np.ndarray], targets: np.ndarray, weight: np.ndarray) -> Fusion:
    """Per-expert Platt scaling, then a logistic regression on the calibrated logits."""
    names = sorted(logits)
    experts_cal = {n: fit_calibration(logits[n], targets) for n in names}
    z = np.stack(
        [logits[n] / experts_cal[n].temperature + experts_cal[n].bias for n in names], axis=1
    )
    coef, bias = fit_logistic(z, targets.astype(float), weight, l2=1e-4)
    return Fusion(
        experts=tuple(
            FusedExpert(n, experts_cal[n], float(c)) for n, c in zip(names, coef, strict=True)
        ),
        bias=bias,
    )


def crossfit(
    folds: np.ndarray, logits: dict[str, np.ndarray], targets: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Cross-fitted fused logits and per-expert calibrated logits (fit off-fold, score on)."""
    fused = np.zeros(len(targets))
    per_expert = {n: np.zeros(len(targets)) for n in logits}
    for f in np.unique(folds):
        fit, test = folds != f, folds == f
        fusion = fit_fusion({n: v[fit] for n, v in logits.items()}, targets[fit], weight[fit])
        for j in np.where(test)[0]:
            raw = {n: float(v[j]) for n, v in logits.items()}
            fused[j] = fusion.logit(raw)
            for n, z in fusion.calibrated_logits(raw).items():
                per_expert[n][j] = z
    return fused, per_expert


def choose_ai_cutoff(
    rows: Sequence[ManifestRow], probs: np.ndarray, max_fpr: float, floor: float
) -> tuple[float, dict]:
    """The lowest cut-off holding every kind's human false-positive rate to `max_fpr`."""
    targets = np.array([r.target for r in rows])
    kinds = {"all": np.ones(len(rows), bool)} | {
        kind: np.array([r.content in members for r in rows])
        for kind, members in CONTENT_GROUPS.items()
    }
    judged = {k: m & (targets == 0) for k, m in kinds.items()}
    judged = {k: m for k, m in judged.items() if m.sum() >= MIN_HUMANS_PER_KIND or k == "all"}
    cut = floor
    for candidate in np.unique(np.r_[probs, floor]):
        if candidate < floor:
            continue
        if all((probs[m] >= candidate).mean() <= max_fpr for m in judged.values()):
            cut = float(candidate)
            break
    else:
        cut = 0.99
    rates = {
        k: {"n_human": int(m.sum()), "likely_ai_rate": float((probs[m] >= cut).mean())}
        for k, m in (
            {"all": kinds["all"] & (targets == 0)}
            | {k: kinds[k] & (targets == 0) for k in CONTENT_GROUPS}
        ).items()
        if m.any()
    }
    return min(0.99, round(cut + 5e-4, 3)), rates


# --------------------------------------------------------------------------- report


def _subset_report(rows, targets, probs, cutoffs) -> dict:
    human, ai = targets == 0, targets == 1
    out = {"n_ai": int(ai.sum()), "n_human": int(human.sum())}
    if ai.any() and human.any():
        out["auc"] = roc_auc(targets, probs)
        out["tpr_at_1pct_fpr"] = tpr_at_fpr(targets, probs, 0.01)
    if ai.any():
        out["ai_at_likely_ai"] = float((probs[ai] >= cutoffs.ai).mean())
    if human.any():
        out["human_at_likely_ai"] = float((probs[human] >= cutoffs.ai).mean())
        out["human_at_likely_human"] = float((probs[human] < cutoffs.human).mean())
    return out


def loso_report(
    train: Sequence[Item], feats: np.ndarray, l2: float, humans_feats: np.ndarray
) -> list[dict]:
    """The CLIP head trained without each generator family, scored on that family."""
    out = []
    families: dict[str, list[int]] = defaultdict(list)
    for j, item in enumerate(train):
        if item.row.label == "ai":
            family = family_of(item.row.generator) or (
                item.row.source_group if item.domain == "corpus" else None
            )
            if family:
                families[family].append(j)
    for family, held in sorted(families.items()):
        if len(held) < 10:
            continue
        held_set = set(held)
        kept = [j for j in range(len(train)) if j not in held_set]
        head = train_head([train[j] for j in kept], feats[kept], l2)
        scores = np.r_[head_logits(head, feats[held, 0]), head_logits(head, humans_feats)]
        targets = np.r_[np.ones(len(held)), np.zeros(len(humans_feats))]
        out.append(
            {
                "family": family,
                "held_out_ai": len(held),
                "val_human": len(humans_feats),
                "auc": roc_auc(targets, scores),
                "tpr_at_5pct_fpr": tpr_at_fpr(targets, scores, 0.05),
            }
        )
        print(f"   LOSO {family}: AUC {out[-1]['auc']:.3f}", flush=True)
    return out


# --------------------------------------------------------------------------- command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="humanmade fuse",
        description="Train the CLIP expert's head on cached features, fuse it with a trace "
        "network's weights, set the cut-offs and write a release.",
    )
    p.add_argument("--data", type=Path, default=None, help="the shared dataset folder")
    p.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help=f"a corpus built by `humanmade data build` (default ${CORPUS_ENV} if set)",
    )
    p.add_argument("--trace", type=Path, default=None, help="trace weights (default: release)")
    p.add_argument("--out", type=Path, required=True, help="the new .safetensors file")
    p.add_argument("--report", type=Path, default=None, help="folder for JSON report and plots")
    p.add_argument("--version", default="0.2.0")
    p.add_argument("--views", type=int_at_least(1), default=2, help="views per train image")
    p.add_argument("--cap", type=int_at_least(1), default=250, help="images per source")
    p.add_argument("--max-crops", type=int_at_least(1), default=DEFAULT_MAX_CROPS)
    p.add_argument("--max-human-fpr", type=fraction, default=0.01)
    p.add_argument("--l2", type=float, default=None, help="skip the L2 search")
    p.add_argument("--loso", action="store_true", help="also leave each generator family out")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = not args.no_progress
    trace_path = args.trace or default_weights_path()
    problem = output_problem(args.out, trace_path)
    if problem:
        return report_error("humanmade fuse", problem)
    corpus = args.corpus or (Path(os.environ[CORPUS_ENV]) if os.environ.get(CORPUS_ENV) else None)
    encoder = ClipEncoder(require_clip_model())
    # Scoring encodes each crop alone; what is scored here to fit the fusion and report
    # figures must be encoded the same way. Training views may share a batch (faster).
    fusion_cache = FeatureCache(features_dir(CLIP_SHA256), batch=1)
    train_cache = FeatureCache(features_dir(CLIP_SHA256), batch=TRAIN_BATCH, also=(1,))

    items = load_items(args.data or default_dataset_dir(), corpus, args.cap)
    train = [i for i in items if i.row.split == "train"]
    fusion_set = [i for i in items if i.domain == "corpus" or i.row.split == "val"]
    print(f"{len(train)} train images, {len(fusion_set)} for fusion and validation", flush=True)

    def refs(sub: Sequence[Item]) -> list[ImageRef]:
        return [ImageRef(i.path, i.sha256) for i in sub]

    fusion_feats = extract(refs(fusion_set), 1, encoder, fusion_cache, progress=progress)[:, 0]
    train_feats = extract(refs(train), args.views, encoder, train_cache, progress=progress)

    if args.l2 is None:
        l2_scores = choose_l2(train, train_feats, progress)
        l2 = max(l2_scores, key=l2_scores.get)
    else:
        l2_scores, l2 = {}, args.l2
    head = train_head(train, train_feats, l2)

    # CLIP logits for the fusion set: out-of-fold for corpus train rows, final head for val.
    clip_logit = head_logits(head, fusion_feats)
    train_index = {i.sha256: j for j, i in enumerate(train)}
    folds = source_folds(train)
    for f in range(FOLDS):
        members = [
            j
            for j, i in enumerate(fusion_set)
            if i.sha256 in train_index and folds[train_index[i.sha256]] == f
        ]
        if not members:
            continue
        keep = folds != f
        fold_head = train_head([train[j] for j in np.where(keep)[0]], train_feats[keep], l2)
        clip_logit[members] = head_logits(fold_head, fusion_feats[members])
    logits = {"clip": clip_logit, "trace": trace_logits(fusion_set, trace_path, progress)}

    rows = [i.row for i in fusion_set]
    targets = np.array([r.target for r in rows])
    weight = np.array(balanced_weights(rows))
    fused_cf, experts_cf = crossfit(source_folds(fusion_set), logits, targets, weight)
    probs_cf = 1.0 / (1.0 + np.exp(-fused_cf))
    cut, per_kind = choose_ai_cutoff(rows, probs_cf, args.max_human_fpr, floor=0.5)
    cutoffs = BandCutoffs(human=min(0.2, cut / 2), ai=cut)
    fusion = fit_fusion(logits, targets, weight)

    report = {
        "fusion_set": {"n": len(rows), "n_ai": int(targets.sum())},
        "train": {
            "n": len(train),
            "views": args.views,
            "l2": l2,
            "l2_oof_auc": {str(k): v for k, v in l2_scores.items()},
        },
        "fusion": json.loads(fusion.to_json()),
        "cutoffs": {"human": cutoffs.human, "ai": cutoffs.ai},
        "human_likely_ai_by_kind": per_kind,
        "fused": build_report(rows, fused_cf, Calibration(), cutoffs),
        "experts": {
            n: build_report(rows, z, Calibration(), cutoffs) for n, z in experts_cf.items()
        },
        "by_domain": {},
    }
    for name, mask in {
        "dataset val": np.array([i.domain == "dataset" for i in fusion_set]),
        "corpus train (out-of-fold)": np.array(
            [i.domain == "corpus" and i.row.split == "train" for i in fusion_set]
        ),
        "corpus val": np.array([i.domain == "corpus" and i.row.split == "val" for i in fusion_set]),
    }.items():
        if mask.any():
            report["by_domain"][name] = {
                "fused": _subset_report(rows, targets[mask], probs_cf[mask], cutoffs),
                **{
                    n: _subset_report(rows, targets[mask], 1 / (1 + np.exp(-z[mask])), cutoffs)
                    for n, z in experts_cf.items()
                },
            }
    if args.loso:
        humans = fusion_feats[
            [j for j, i in enumerate(fusion_set) if i.row.label == "human" and i.row.split == "val"]
        ]
        report["loso_clip_head"] = loso_report(train, train_feats, l2, humans)

    # The shared val split as shipped (final fusion and cut-off, fitted with these images
    # among others): what `humanmade evaluate` and the quality gate recompute.
    val_idx = [j for j, i in enumerate(fusion_set) if i.domain == "dataset"]
    val_logits = np.array(
        [fusion.logit({n: float(v[j]) for n, v in logits.items()}) for j in val_idx]
    )
    val_rows = [rows[j] for j in val_idx]
    report["dataset_val_as_shipped"] = build_report(val_rows, val_logits, Calibration(), cutoffs)

    trace = load_weights(trace_path)
    sha = save_weights(
        args.out,
        trace.model,
        Calibration(),
        args.version,
        trace.tile_size,
        extra={
            "trace_source": f"{trace.version} sha256 {trace.sha256}",
            "crossfitted": json.dumps(
                {k: report["fused"][k] for k in ("auc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr")}
            ),
            "val_report": json.dumps(headline(report["dataset_val_as_shipped"])),
        },
        cutoffs=cutoffs,
        clip=ClipSpec(head=head, encoder_sha256=CLIP_SHA256, max_crops=args.max_crops),
        fusion=fusion,
    )
    report["weights_sha256"] = sha
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "fusion-report.json").write_text(json.dumps(report, indent=2))
        write_plots(rows, probs_cf, args.report, "fused experts, cross-fitted by source")
    f = report["fused"]
    print(
        f"fused (cross-fitted by source): AUC {f['auc']:.4f}, TPR@1%FPR {f['tpr_at_1pct_fpr']:.3f},"
        f" likely_ai cut-off {cutoffs.ai:.3f}; wrote {args.out} (sha256 {sha})"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
