"""`humanmade fuse`: train the CLIP head, fit the fusion, set the cut-offs, write a release.

The steps, and why each is held out the way it is:

1. Rows: the shared dataset and, if given, the registry corpus (`humanmade data build`),
   less reserved sources and sealed-set originals; at most `--cap` images per source.
2. The CLIP head is a logistic regression on frozen token summaries (class and mean patch
   token of the blocks it reads) of every view of the `train` rows (both datasets), class-
   and source-balanced; which blocks, the patch part's weight and the L2 strength are chosen
   by cross-validation grouped by source on `train` alone (`clip_head`).
3. The fusion set is every image neither expert was trained on: the shared `val` split and
   the whole corpus (the trace network never saw it). Corpus `train` rows get out-of-fold
   CLIP logits (head fitted without their source's fold); `val` rows the final head's.
4. Per-expert calibration and fusion weights are fitted on the fusion set; every figure
   reported is cross-fitted (fitted on the other source folds, measured on the held one).
   Each expert's marginal value is the cross-fitted figure of the fusion with and without
   it; `--experts` says which experts the release keeps (an expert that does not earn its
   cost is left out, and with the trace network out, scoring needs no torch).
5. The `likely_ai` cut-off is the lowest at which at most `--max-human-fpr` of the human
   images of each kind (with enough images to tell) reach it, on cross-fitted probabilities.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..argtypes import fraction, int_at_least, report_error
from ..calibration import Calibration, fit_calibration
from ..detector import DEFAULT_MAX_TILES
from ..experts.clip import DEFAULT_MAX_CROPS, ClipHead
from ..experts.trace import image_logit
from ..fusion import FusedExpert, Fusion
from ..intake import IntakeLimits, load_image
from ..model_files import CLIP_SHA256, cache_dir, file_sha256, require_clip_model
from ..verdict import BandCutoffs
from ..weights import ClipSpec, default_weights_path, load_weights, output_problem, save_weights
from .clip_features import (
    FeatureCache,
    ImageRef,
    block_encoder,
    extract,
    extract_cached_views,
    features_dir,
)
from .clip_head import (
    ALL_BLOCKS,
    FOLDS,
    HeadConfig,
    best_config,
    choose_config,
    fit_logistic,
    head_logits,
    train_head,
)
from .clip_head import source_folds as folds_of_sources
from .data import ManifestRow, balanced_weights, default_dataset_dir, read_manifest
from .evaluate import CONTENT_GROUPS, build_report, headline, write_plots
from .fuse_report import (
    PHOTO_CONTENT,
    block_study,
    family_of_row,
    loso_report,
    marginal_value,
    subset_report,
)
from .sources import cap_per_source, usable

CORPUS_ENV = "HUMANMADE_CORPUS"
TRAIN_BATCH = 8
# A kind's false-positive rate is only held to the limit where 1 % is at least one image.
MIN_HUMANS_PER_KIND = 100


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


def source_folds(items: Sequence[Item], k: int = FOLDS) -> np.ndarray:
    """A fold per item, the same for every item of one source (see `clip_head.source_folds`)."""
    return folds_of_sources([i.row.source_group for i in items], k)


def targets_of(items: Sequence[Item]) -> np.ndarray:
    return np.array([i.target for i in items])


def weights_of(items: Sequence[Item]) -> np.ndarray:
    return np.array(balanced_weights([i.row for i in items]))


def fit_items(items: Sequence[Item], features: np.ndarray, config: HeadConfig) -> ClipHead:
    """The head on every view of these train items (class- and source-balanced)."""
    return train_head(features, targets_of(items), weights_of(items), config)


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
            loaded.model, pixels, loaded.tile_size, DEFAULT_MAX_TILES, "cpu"
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


# --------------------------------------------------------------------------- command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="humanmade fuse",
        description="Train the CLIP expert's head on cached per-block features, fuse it (with "
        "a trace network, if kept), set the cut-offs and write a release.",
    )
    p.add_argument("--data", type=Path, default=None, help="the shared dataset folder")
    p.add_argument(
        "--corpus",
        type=Path,
        default=None,
        help=f"a corpus built by `humanmade data build` (default ${CORPUS_ENV} if set)",
    )
    p.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="trace network weights, measured for their marginal value and kept when "
        "--experts names trace (default: the v0.1.0 release, weights/humanmade.safetensors)",
    )
    p.add_argument(
        "--experts",
        default="clip",
        help="the experts the release keeps, comma-separated: clip (default) or clip,trace",
    )
    p.add_argument(
        "--no-trace-marginal",
        action="store_true",
        help="do not score the fusion set with the trace network (its marginal value is then "
        "not measured); only with --experts clip",
    )
    p.add_argument("--out", type=Path, required=True, help="the new .safetensors file")
    p.add_argument("--report", type=Path, default=None, help="folder for JSON report and plots")
    p.add_argument("--version", default="0.3.0")
    p.add_argument("--views", type=int_at_least(1), default=2, help="views per train image")
    p.add_argument(
        "--cached-views-only",
        action="store_true",
        help="encode only view 0 where missing; an augmented view the feature cache lacks is "
        "replaced by view 0 (the report counts them)",
    )
    p.add_argument("--cap", type=int_at_least(1), default=250, help="images per source")
    p.add_argument("--max-crops", type=int_at_least(1), default=DEFAULT_MAX_CROPS)
    p.add_argument("--max-human-fpr", type=fraction, default=0.01)
    p.add_argument(
        "--head",
        default=None,
        metavar="BLOCKS:L2:PATCH_SCALE",
        help="skip the head search: e.g. all:0.3:1 or 11:0.3:1",
    )
    p.add_argument("--study", action="store_true", help="also run the per-block study")
    p.add_argument("--loso", action="store_true", help="also leave each generator family out")
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_head(text: str) -> HeadConfig:
    """`BLOCKS:L2:PATCH_SCALE`, BLOCKS being `all` or comma-separated block numbers."""
    try:
        blocks_text, l2, scale = text.split(":")
        blocks = (
            ALL_BLOCKS if blocks_text == "all" else tuple(int(b) for b in blocks_text.split(","))
        )
        return HeadConfig(blocks, float(l2), float(scale))
    except ValueError as exc:
        raise ValueError(f"--head {text!r}: expected BLOCKS:L2:PATCH_SCALE ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = not args.no_progress
    experts = tuple(e.strip() for e in args.experts.split(",") if e.strip())
    if "clip" not in experts or set(experts) - {"clip", "trace"}:
        return report_error("humanmade fuse", f"--experts {args.experts}: use clip or clip,trace")
    if args.no_trace_marginal and "trace" in experts:
        return report_error("humanmade fuse", "--no-trace-marginal needs --experts clip")
    try:
        fixed_head = parse_head(args.head) if args.head else None
    except ValueError as exc:
        return report_error("humanmade fuse", str(exc))
    trace_path = args.trace or default_weights_path().with_name("humanmade.safetensors")
    problem = output_problem(args.out, trace_path)
    if problem:
        return report_error("humanmade fuse", problem)
    corpus = args.corpus or (Path(os.environ[CORPUS_ENV]) if os.environ.get(CORPUS_ENV) else None)
    encoder = block_encoder(require_clip_model())
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
    if args.cached_views_only:
        train_feats, replaced = extract_cached_views(
            refs(train), args.views, encoder, train_cache, progress=progress
        )
    else:
        train_feats = extract(refs(train), args.views, encoder, train_cache, progress=progress)
        replaced = 0
    y_train, w_train = targets_of(train), weights_of(train)

    if fixed_head is None:
        head_search = choose_config(
            train_feats, y_train, w_train, [i.row.source_group for i in train], progress=progress
        )
        config = best_config(head_search)
    else:
        head_search, config = [], fixed_head
    print(f"CLIP head: {config.label}", flush=True)
    head = fit_items(train, train_feats, config)

    # CLIP logits for the fusion set: out-of-fold for corpus train rows, final head for val.
    clip_logit = head_logits(head, config.blocks, fusion_feats)
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
        fold_head = fit_items([train[j] for j in np.where(keep)[0]], train_feats[keep], config)
        clip_logit[members] = head_logits(fold_head, config.blocks, fusion_feats[members])
    measured = {"clip": clip_logit}
    if not args.no_trace_marginal:
        measured["trace"] = trace_logits(fusion_set, trace_path, progress)
    logits = {n: measured[n] for n in experts}

    rows = [i.row for i in fusion_set]
    targets = np.array([r.target for r in rows])
    weight = np.array(balanced_weights(rows))
    fusion_folds = source_folds(fusion_set)
    fused_cf, experts_cf = crossfit(fusion_folds, logits, targets, weight)
    probs_cf = 1.0 / (1.0 + np.exp(-fused_cf))
    cut, per_kind = choose_ai_cutoff(rows, probs_cf, args.max_human_fpr, floor=0.5)
    cutoffs = BandCutoffs(human=min(0.2, cut / 2), ai=cut)
    fusion = fit_fusion(logits, targets, weight)

    photo = np.array([r.content in PHOTO_CONTENT for r in rows])
    domains = {
        "dataset val": np.array([i.domain == "dataset" for i in fusion_set]),
        "corpus train (out-of-fold)": np.array(
            [i.domain == "corpus" and i.row.split == "train" for i in fusion_set]
        ),
        "corpus val": np.array([i.domain == "corpus" and i.row.split == "val" for i in fusion_set]),
    }
    report = {
        "fusion_set": {"n": len(rows), "n_ai": int(targets.sum())},
        "train": {"n": len(train), "views": args.views, "views_replaced_by_view_0": replaced},
        "clip_head": {**config.to_dict(), "label": config.label, "search": head_search},
        "experts_kept": list(experts),
        "fusion": json.loads(fusion.to_json()),
        "cutoffs": {"human": cutoffs.human, "ai": cutoffs.ai},
        "human_likely_ai_by_kind": per_kind,
        "fused": build_report(rows, fused_cf, Calibration(), cutoffs),
        "experts": {
            n: build_report(rows, z, Calibration(), cutoffs) for n, z in experts_cf.items()
        },
        "by_domain": {},
        "photo_face": {},
        "marginal_value": marginal_value(
            lambda chosen: crossfit(fusion_folds, chosen, targets, weight)[0],
            measured,
            targets,
            {"all": np.ones(len(rows), bool), **domains, "photo/face": photo},
        ),
    }
    for name, mask in {"all": np.ones(len(rows), bool), **domains}.items():
        if mask.any():
            report["by_domain"][name] = {
                "fused": subset_report(targets[mask], probs_cf[mask], cutoffs)
            }
            for n, z in experts_cf.items():
                report["by_domain"][name][n] = subset_report(
                    targets[mask], 1 / (1 + np.exp(-z[mask])), cutoffs
                )
            both = mask & photo
            if both.any():
                report["photo_face"][name] = subset_report(targets[both], probs_cf[both], cutoffs)

    val_human = [
        j for j, i in enumerate(fusion_set) if i.row.label == "human" and i.row.split == "val"
    ]
    if args.study:
        held_out = {
            name: (fusion_feats[m], targets[m], photo[m])
            for name, m in domains.items()
            if name != "corpus train (out-of-fold)" and m.any()
        }
        report["block_study"] = block_study(
            lambda c: fit_items(train, train_feats, c), held_out, config.l2, progress
        )
    if args.loso:
        train_photo = np.array([i.row.content in PHOTO_CONTENT for i in train])

        def fit_without(keep: np.ndarray) -> tuple[ClipHead, HeadConfig]:
            # View 0 only, as in the head search: one fit per family on two CPU cores.
            kept = [train[j] for j in np.where(keep)[0]]
            return fit_items(kept, train_feats[keep, :1], config), config

        report["loso_clip_head"] = loso_report(
            [
                family_of_row(i.row.generator, i.row.source_group, i.domain)
                if i.row.label == "ai"
                else None
                for i in train
            ],
            fit_without,
            train_feats,
            (fusion_feats[val_human], photo[val_human]),
            train_photo,
            min_images=20,
            progress=progress,
        )

    # The shared val split as shipped (final fusion and cut-off, fitted with these images
    # among others): what `humanmade evaluate` and the quality gate recompute.
    val_idx = [j for j, i in enumerate(fusion_set) if i.domain == "dataset"]
    val_logits = np.array(
        [fusion.logit({n: float(v[j]) for n, v in logits.items()}) for j in val_idx]
    )
    val_rows = [rows[j] for j in val_idx]
    report["dataset_val_as_shipped"] = build_report(val_rows, val_logits, Calibration(), cutoffs)

    trace = load_weights(trace_path) if "trace" in experts else None
    extra = {
        "crossfitted": json.dumps(
            {k: report["fused"][k] for k in ("auc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr")}
        ),
        "val_report": json.dumps(headline(report["dataset_val_as_shipped"])),
        "clip_head": json.dumps(config.to_dict()),
    }
    if trace is not None:
        extra["trace_source"] = f"{trace.version} sha256 {trace.sha256}"
    sha = save_weights(
        args.out,
        trace.model if trace else None,
        Calibration(),
        args.version,
        trace.tile_size if trace else None,
        extra=extra,
        cutoffs=cutoffs,
        clip=ClipSpec(
            head=head, encoder_sha256=CLIP_SHA256, max_crops=args.max_crops, blocks=config.blocks
        ),
        fusion=fusion,
    )
    report["weights_sha256"] = sha
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "fusion-report.json").write_text(json.dumps(report, indent=2))
        # Each fusion-set image's raw expert logits (CLIP out-of-fold where trained on), for
        # later studies of the fusion without encoding again.
        np.savez_compressed(
            args.report / "fusion-logits.npz",
            sha256=np.array([i.sha256 for i in fusion_set]),
            folds=fusion_folds,
            targets=targets,
            **measured,
        )
        write_plots(rows, probs_cf, args.report, "fused experts, cross-fitted by source")
    f = report["fused"]
    print(
        f"fused (cross-fitted by source): AUC {f['auc']:.4f}, TPR@1%FPR {f['tpr_at_1pct_fpr']:.3f},"
        f" likely_ai cut-off {cutoffs.ai:.3f}; wrote {args.out} (sha256 {sha})"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
