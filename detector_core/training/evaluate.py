"""Evaluate weights on a held-out split: metrics as JSON, ROC and reliability plots as PNG.

    humanmade evaluate --split val --out reports/

Every figure comes from images of sources the model was never trained on (`val` is split
by source). Probabilities are those the Detector would report (same tiling, same
calibration). Because the shipped calibration was fitted on `val`, the calibration error is
also reported cross-fitted: fitted on half of val, measured on the other half (split by
image, and, harsher, by source).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..calibration import (
    Calibration,
    expected_calibration_error,
    fit_calibration,
    reliability_bins,
)
from ..detector import DEFAULT_MAX_TILES, Detector, image_logit
from ..experts.trace import PatchModel
from ..tiling import MIN_SIDE
from ..verdict import Band, BandCutoffs
from ..weights import LoadedWeights, default_weights_path, load_weights
from .data import ManifestRow, default_dataset_dir, load_pixels, read_manifest
from .metrics import roc_auc, roc_curve, tpr_at_fpr
from .sources import usable

_CPU = torch.device("cpu")


def logits_for(
    model: PatchModel, arrays: Sequence[np.ndarray], tile_size: int, progress: bool = True
) -> np.ndarray:
    """Image logits exactly as the Detector computes them (native-resolution tiles)."""
    return np.array(
        [
            image_logit(model, a, tile_size, DEFAULT_MAX_TILES, _CPU)[0]
            for a in tqdm(arrays, desc="scoring", unit="img", disable=not progress)
        ]
    )


def release_logits(
    loaded: LoadedWeights, arrays: Sequence[np.ndarray], progress: bool = True
) -> np.ndarray:
    """The release's logits before its final calibration: the fused logit of its experts
    (for a one-network release, that network's raw logit), exactly as the Detector has it."""
    detector = Detector(
        loaded.path, expected_sha256=loaded.sha256, stability_check=False, provenance=False
    )
    return np.array(
        [
            loaded.fusion.logit(detector.expert_logits(a))
            for a in tqdm(arrays, desc="scoring", unit="img", disable=not progress)
        ]
    )


def _jpeg(quality: int) -> Callable[[Image.Image], Image.Image]:
    def apply(image: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as out:
            return out.convert("RGB")

    return apply


def _resize(factor: float) -> Callable[[Image.Image], Image.Image]:
    def apply(image: Image.Image) -> Image.Image:
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        return image.resize(size, Image.Resampling.BICUBIC)

    return apply


def _centre_crop(image: Image.Image) -> Image.Image:
    w, h = image.width // 2, image.height // 2
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h))


def _social(image: Image.Image) -> Image.Image:
    # Platforms shrink to 1080 px on the long side (never enlarge), then re-encode.
    scale = 1080 / max(image.size)
    if scale < 1:
        image = _resize(scale)(image)
    return _jpeg(80)(image)


ROBUSTNESS = {
    "as given": lambda image: image,
    "JPEG q95": _jpeg(95),
    "JPEG q75": _jpeg(75),
    "JPEG q50": _jpeg(50),
    "resize 0.5×": _resize(0.5),
    "resize 1.5×": _resize(1.5),
    "centre crop (half of each side)": _centre_crop,
    "social chain (≤1080 px, JPEG q80)": _social,
}


def robustness_report(
    loaded: LoadedWeights,
    rows: Sequence[ManifestRow],
    arrays: Sequence[np.ndarray],
    cutoffs: BandCutoffs,
    progress: bool = True,
    detector: Detector | None = None,
) -> dict[str, dict]:
    """AUC and false-positive rate at `likely_ai` after each everyday transformation.

    Images that end up smaller than the detector's minimum side are left out of that row.
    With a `detector`, the human images are also scored as the product scores them (the
    stability check included, provenance left out: the pixels are what is being tested),
    which gives the rate at which people would actually see `likely_ai` on human work.
    """
    out = {}
    scorer = Detector(
        loaded.path, expected_sha256=loaded.sha256, stability_check=False, provenance=False
    )
    for name, transform in ROBUSTNESS.items():
        keep, logits, human_images = [], [], []
        for i, array in enumerate(tqdm(arrays, desc=name, unit="img", disable=not progress)):
            image = transform(Image.fromarray(array))
            pixels = np.asarray(image, dtype=np.uint8)
            if min(pixels.shape[:2]) < MIN_SIDE:
                continue
            keep.append(i)
            logits.append(loaded.fusion.logit(scorer.expert_logits(pixels)))
            if detector is not None and rows[i].target == 0:
                human_images.append(image)
        targets = np.array([rows[i].target for i in keep])
        probs = loaded.calibration.probability(np.array(logits))
        human = targets == 0
        out[name] = {
            "n": len(keep),
            "auc": roc_auc(targets, probs),
            "likely_ai_rate_on_human": float(np.mean(probs[human] >= cutoffs.ai)),
            "tpr_at_0.5": float(np.mean(probs[~human] >= 0.5)),
        }
        if detector is not None:
            out[name]["likely_ai_verdicts_on_human"] = _likely_ai_share(
                detector, human_images, f"{name}, verdicts", progress
            )
    return out


def _likely_ai_share(
    detector: Detector, images: Sequence[Image.Image], desc: str, progress: bool
) -> float:
    flagged = 0
    for image in tqdm(images, desc=desc, unit="img", disable=not progress):
        verdict = detector.score(image)
        flagged += verdict.band == Band.LIKELY_AI
    return flagged / max(1, len(images))


def sample_rows(rows: list[ManifestRow], n: int, seed: int = 0) -> list[ManifestRow]:
    """A label-stratified random sample of n rows (all rows when n is 0 or too large)."""
    if n <= 0 or n >= len(rows):
        return rows
    rng = random.Random(seed)
    out = []
    for label in ("ai", "human"):
        group = [r for r in rows if r.label == label]
        out += rng.sample(group, max(1, round(n * len(group) / len(rows))))
    return out


def _folds(rows: Sequence[ManifestRow], by_source: bool) -> np.ndarray:
    if by_source:
        return np.array([hashlib.sha256(r.source_group.encode()).digest()[0] % 2 for r in rows])
    # Label-stratified alternation after a seeded shuffle: each half keeps the class balance.
    folds = np.zeros(len(rows), dtype=int)
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    seen = {"ai": 0, "human": 0}
    for i in order:
        folds[i] = seen[rows[i].label] % 2
        seen[rows[i].label] += 1
    return folds


def crossfit_ece(
    rows: Sequence[ManifestRow], logits: np.ndarray, by_source: bool = False
) -> float | None:
    """ECE with calibration fitted on one half of the images and measured on the other.

    `by_source` splits by source instead: harsher, since the halves then differ in class
    balance and content, which a two-parameter calibration cannot follow.
    """
    targets = np.array([r.target for r in rows])
    folds = _folds(rows, by_source)
    probs = np.empty(len(rows))
    for fold in (0, 1):
        fit, test = folds != fold, folds == fold
        if len(set(targets[fit])) < 2 or not test.any():
            return None
        probs[test] = fit_calibration(logits[fit], targets[fit]).probability(logits[test])
    return expected_calibration_error(probs, targets)


def _group_row(targets: np.ndarray, probs: np.ndarray, cutoffs: BandCutoffs) -> dict:
    bands = [cutoffs.band(p) for p in probs]
    human, ai = targets == 0, targets == 1
    row: dict = {"n": int(len(targets)), "n_ai": int(ai.sum()), "n_human": int(human.sum())}
    if ai.any():
        row["tpr_at_0.5"] = float((probs[ai] >= 0.5).mean())
        row["likely_ai_rate_on_ai"] = float(
            np.mean([b is Band.LIKELY_AI for b, a in zip(bands, ai, strict=True) if a])
        )
        row["mean_probability_ai"] = float(probs[ai].mean())
    if human.any():
        row["fpr_at_0.5"] = float((probs[human] >= 0.5).mean())
        row["likely_ai_rate_on_human"] = float(
            np.mean([b is Band.LIKELY_AI for b, h in zip(bands, human, strict=True) if h])
        )
        row["mean_probability_human"] = float(probs[human].mean())
    if ai.any() and human.any():
        row["auc"] = roc_auc(targets, probs)
    return row


# The groups the product's false-positive promise is stated for.
CONTENT_GROUPS = {
    "photo": ("photo", "face"),
    "painting/drawing": ("painting", "drawing", "art"),
    "manga/illustration": ("manga", "illustration", "pixelart"),
    "render": ("render",),
}


def build_report(
    rows: Sequence[ManifestRow],
    logits: np.ndarray,
    calibration: Calibration,
    cutoffs: BandCutoffs,
) -> dict:
    targets = np.array([r.target for r in rows])
    probs = calibration.probability(logits)
    human = targets == 0
    report = {
        "n_images": len(rows),
        "n_ai": int(targets.sum()),
        "n_human": int(human.sum()),
        "auc": roc_auc(targets, probs),
        "accuracy_at_0.5": float(((probs >= 0.5) == targets).mean()),
        "tpr_at_1pct_fpr": tpr_at_fpr(targets, probs, 0.01),
        "tpr_at_5pct_fpr": tpr_at_fpr(targets, probs, 0.05),
        "ece_as_shipped": expected_calibration_error(probs, targets),
        "ece_crossfitted": crossfit_ece(rows, logits),
        "ece_crossfitted_by_source": crossfit_ece(rows, logits, by_source=True),
        "band_cutoffs": {"human": cutoffs.human, "ai": cutoffs.ai},
        "overall": _group_row(targets, probs, cutoffs),
    }
    by_generator: dict[str, list[int]] = defaultdict(list)
    by_content: dict[str, list[int]] = defaultdict(list)
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r.label == "ai":
            by_generator[r.generator or "unknown"].append(i)
        by_content[r.content or "unknown"].append(i)
        by_source[r.source_group].append(i)
    human_idx = np.where(human)[0]

    def generator_row(idx: list[int]) -> dict:
        # Each generator against all human images, so its AUC is comparable across rows.
        both = np.r_[np.array(idx), human_idx]
        return _group_row(targets[both], probs[both], cutoffs) | {"n_ai": len(idx)}

    report["per_generator"] = {g: generator_row(ix) for g, ix in sorted(by_generator.items())}
    report["per_content"] = {
        c: _group_row(targets[ix], probs[ix], cutoffs) for c, ix in sorted(by_content.items())
    }
    report["per_content_group"] = {
        group: _group_row(targets[ix], probs[ix], cutoffs)
        for group, members in CONTENT_GROUPS.items()
        if (ix := [i for i, r in enumerate(rows) if r.content in members])
    }
    report["per_source"] = {
        s: _group_row(targets[ix], probs[ix], cutoffs) for s, ix in sorted(by_source.items())
    }
    return report


HEADLINE_KEYS = (
    "n_images",
    "auc",
    "accuracy_at_0.5",
    "tpr_at_1pct_fpr",
    "tpr_at_5pct_fpr",
    "ece_as_shipped",
    "ece_crossfitted",
    "ece_crossfitted_by_source",
)


def headline(report: dict) -> dict:
    """The few figures worth storing beside the weights (`humanmade info` prints them)."""
    out = {k: report[k] for k in HEADLINE_KEYS if k in report}
    out["likely_ai_rate_on_human"] = report["overall"].get("likely_ai_rate_on_human")
    return out


def write_plots(
    rows: Sequence[ManifestRow], probs: np.ndarray, out_dir: Path, title: str
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = np.array([r.target for r in rows])
    out_dir.mkdir(parents=True, exist_ok=True)
    fpr, tpr = roc_curve(targets, probs)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC {roc_auc(targets, probs):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    ax.set(
        xlabel="false-positive rate (human called AI)",
        ylabel="true-positive rate",
        title=f"ROC — {title}",
    )
    ax.legend(loc="lower right")
    roc_path = _save(fig, out_dir / "roc.png")

    centres, observed, counts = zip(*reliability_bins(probs, targets), strict=True)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8, label="perfect calibration")
    ax.plot(centres, observed, "o-", label="model")
    for x, y, n in zip(centres, observed, counts, strict=True):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(
        xlabel="predicted probability of AI",
        ylabel="observed fraction AI",
        title=f"Reliability — {title}",
    )
    ax.legend(loc="upper left")
    return [roc_path, _save(fig, out_dir / "reliability.png")]


def write_robustness_plot(rows: dict[str, dict], out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1))
    ax.barh(names[::-1], [rows[n]["auc"] for n in names][::-1], color="#4a7ab0")
    ax.axvline(rows[names[0]]["auc"], color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlim=(0.5, 1.0), xlabel="ROC AUC on val", title="Robustness to everyday edits")
    return _save(fig, out_dir / "robustness.png")


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def evaluate(
    weights: Path | None = None,
    data_dir: Path | None = None,
    split: str = "val",
    sample: int = 0,
    cutoffs: BandCutoffs | None = None,
    progress: bool = True,
    robustness: bool = False,
    verdicts: bool = False,
) -> tuple[dict, list[ManifestRow], np.ndarray]:
    """Score a split with the given weights; returns (report, rows, probabilities).

    `robustness`: also score every image again after each transformation in `ROBUSTNESS`;
    `verdicts`: there, also score the human images through the Detector (stability check).
    """
    loaded = load_weights(weights or default_weights_path())
    cutoffs = cutoffs or loaded.cutoffs
    data_dir = data_dir or default_dataset_dir()
    # Reserved sources are for independent checks, never for figures of ours.
    rows = sample_rows(usable(read_manifest(data_dir, split)), sample)
    if not rows:
        raise ValueError(f"split {split!r} has no rows in {data_dir}")
    arrays = load_pixels(data_dir, rows, progress=progress)
    logits = release_logits(loaded, arrays, progress=progress)
    report = build_report(rows, logits, loaded.calibration, cutoffs)
    report |= {
        "split": split,
        "model_version": loaded.version,
        "weights_sha256": loaded.sha256,
        "sampled": bool(sample and sample < len(read_manifest(data_dir, split))),
    }
    if robustness:
        detector = (
            Detector(loaded.path, expected_sha256=loaded.sha256, cutoffs=cutoffs, provenance=False)
            if verdicts
            else None
        )
        report["robustness"] = robustness_report(
            loaded, rows, arrays, cutoffs, progress, detector
        )
    return report, rows, loaded.calibration.probability(logits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="humanmade evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None, help="dataset folder (manifest.csv)")
    parser.add_argument("--split", default="val")
    parser.add_argument(
        "--sample", type=int, default=0, help="score a stratified sample of N images"
    )
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument(
        "--robustness",
        action="store_true",
        help="also score after JPEG q95/75/50, 0.5×/1.5× resize, centre crop, social chain",
    )
    parser.add_argument(
        "--verdicts",
        action="store_true",
        help="with --robustness: also score the human images through the Detector, stability "
        "check included, and report how many verdicts say likely_ai (slow: 3 passes each)",
    )
    args = parser.parse_args(argv)
    if args.verdicts and not args.robustness:
        parser.error("--verdicts goes with --robustness")
    if args.split == "train":
        print("note: 'train' figures say nothing about generalisation", file=sys.stderr)
    report, rows, probs = evaluate(
        args.weights,
        args.data,
        args.split,
        args.sample,
        robustness=args.robustness,
        verdicts=args.verdicts,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    plots = write_plots(rows, probs, args.out, f"{args.split} ({len(rows)} images)")
    print(
        f"{args.split}: {report['n_images']} images "
        f"({report['n_ai']} AI, {report['n_human']} human)"
    )
    for key in (
        "auc",
        "accuracy_at_0.5",
        "tpr_at_1pct_fpr",
        "tpr_at_5pct_fpr",
        "ece_as_shipped",
        "ece_crossfitted",
        "ece_crossfitted_by_source",
    ):
        value = report[key]
        print(f"  {key:28s} {value:.4f}" if isinstance(value, float) else f"  {key:28s} {value}")
    print(
        f"  likely_ai band on human       {report['overall'].get('likely_ai_rate_on_human', 0):.4f}"
    )
    if "robustness" in report:
        print(
            f"  {'robustness':34s} {'n':>4} {'AUC':>6} {'human in likely_ai':>19}"
            + (f" {'…after stability check':>23}" if args.verdicts else "")
        )
        for name, row in report["robustness"].items():
            print(
                f"  {name:34s} {row['n']:>4} {row['auc']:>6.3f} "
                f"{row['likely_ai_rate_on_human']:>19.3f}"
                + (f" {row['likely_ai_verdicts_on_human']:>23.3f}" if args.verdicts else "")
            )
        plots.append(write_robustness_plot(report["robustness"], args.out))
    print(f"wrote {args.out / 'report.json'}, " + ", ".join(str(p) for p in plots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
