"""Refit only the calibration and band cut-offs of existing weights on a site's reviewed images.

    humanmade calibrate --weights weights/humanmade.safetensors --add site-export/ \\
        --out weights/site.safetensors

The network is unchanged (same tensors); the temperature and bias are refitted on the
reviewer-labelled images of the exports' `train` split, and the cut-offs are chosen on them:

- `ai`: the smallest cut-off of at least 0.80 at which at most `--fpr-target` of the reviewed
  human images reach `likely_ai`. Calling human work AI is the product's worst failure, so
  the cut-off never goes below the default.
- `human`: stays 0.20 unless more than `--fnr-target` of the reviewed AI images fall below
  it; then it moves down just enough. It never moves up.

Never used: the exports' `val` slice (the release gate's held-out images; reported on, when
there are reviewer rows in it) and `confident_score` rows (the model's own opinion).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..argtypes import fraction, int_at_least, report_error
from ..calibration import Calibration, expected_calibration_error, fit_calibration
from ..errors import WeightsError
from ..verdict import BandCutoffs
from ..weights import default_weights_path, load_weights, output_problem, save_weights
from .data import ManifestRow
from .evaluate import release_logits
from .feedback import ExportError, load_export_pixels, read_exports

PROG = "humanmade calibrate"

DEFAULT_FPR_TARGET = 0.02
DEFAULT_FNR_TARGET = 0.05
DEFAULT_MIN_PER_CLASS = 20
# Metadata of the parent that no longer describes the recalibrated weights.
_STALE_KEYS = frozenset(
    {
        "format",
        "version",
        "config",
        "calibration",
        "tile_size",
        "cutoffs",
        "parent_version",
        "parent_sha256",
        "calibrated_on",
        "calibration_report",
        "calibration_report_in_sample",
        "val_report",  # its ECE and band rates were those of the old calibration
    }
)
_STEP = 1000  # cut-offs are rounded to 0.001, away from the side they protect


def choose_cutoffs(
    human_probs: np.ndarray,
    ai_probs: np.ndarray,
    fpr_target: float = DEFAULT_FPR_TARGET,
    fnr_target: float = DEFAULT_FNR_TARGET,
) -> tuple[BandCutoffs, bool]:
    """Band cut-offs for reviewed images' calibrated probabilities; see the module docstring.

    Returns (cut-offs, whether the false-positive target was met: with human images scored
    at probability 1.0, no cut-off can keep them out of `likely_ai`).
    """
    default = BandCutoffs()
    human_probs = np.sort(np.asarray(human_probs, dtype=float))[::-1]
    ai_probs = np.sort(np.asarray(ai_probs, dtype=float))

    ai_cut, met = default.ai, True
    allowed = math.floor(fpr_target * len(human_probs) + 1e-9)
    if allowed < len(human_probs) and human_probs[allowed] >= default.ai:
        # The (allowed+1)-th most AI-looking human image must land below the cut-off.
        worst = float(human_probs[allowed])
        ai_cut = math.floor(worst * _STEP + 1e-9) / _STEP
        while ai_cut <= worst:
            ai_cut += 1 / _STEP
        if ai_cut > 1.0:
            ai_cut, met = 1.0, False
        ai_cut = round(min(ai_cut, 1.0), 6)

    human_cut = default.human
    allowed = math.floor(fnr_target * len(ai_probs) + 1e-9)
    if allowed < len(ai_probs) and int((ai_probs < default.human).sum()) > allowed:
        # Everything below the (allowed+1)-th least AI-looking AI image is likely_human.
        human_cut = math.floor(float(ai_probs[allowed]) * _STEP) / _STEP
        human_cut = round(max(0.0, min(human_cut, default.human)), 6)
    return BandCutoffs(human=human_cut, ai=ai_cut), met


def _rate(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def calibration_figures(
    probs: np.ndarray, targets: np.ndarray, cutoffs: BandCutoffs
) -> dict[str, float | int | None]:
    """Log loss, ECE and the band error rates of calibrated probabilities."""
    probs, targets = np.asarray(probs, dtype=float), np.asarray(targets, dtype=float)
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    human = targets == 0
    return {
        "n_human": int(human.sum()),
        "n_ai": int((~human).sum()),
        "log_loss": float(-np.mean(targets * np.log(clipped) + (1 - targets) * np.log1p(-clipped))),
        "ece": expected_calibration_error(probs, targets),
        "human_in_likely_ai": _rate(probs[human] >= cutoffs.ai),
        "ai_in_likely_human": _rate(probs[~human] < cutoffs.human),
    }


def _show(value: float | int | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:.4f}"


def _print_comparison(
    title: str, before: dict, after: dict, old: BandCutoffs, new: BandCutoffs
) -> None:
    print(title)
    print(f"  {'':24s} {'before':>12s} {'after':>12s}")
    before_cut, after_cut = f"{old.human:.3f}/{old.ai:.3f}", f"{new.human:.3f}/{new.ai:.3f}"
    print(f"  {'cut-offs (human/ai)':24s} {before_cut:>12s} {after_cut:>12s}")
    for key, label, percent in (
        ("log_loss", "log loss", False),
        ("ece", "ECE", False),
        ("human_in_likely_ai", "human FPR at likely_ai", True),
        ("ai_in_likely_human", "AI in likely_human", True),
    ):
        print(f"  {label:24s} {_show(before[key], percent):>12s} {_show(after[key], percent):>12s}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--weights", type=Path, default=None, help="weights to recalibrate (default: the release)"
    )
    parser.add_argument(
        "--weights-sha256",
        default=None,
        help="verify the weights against this sha256 instead of the model card beside them",
    )
    parser.add_argument(
        "--add",
        type=Path,
        action="append",
        required=True,
        metavar="EXPORT_DIR",
        help="a site's review export (repeatable); its reviewer-labelled train rows are used",
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the new weights")
    parser.add_argument("--version", default=None, help="model version (default: BASE-cal)")
    parser.add_argument(
        "--fpr-target",
        type=fraction,
        default=DEFAULT_FPR_TARGET,
        help="at most this share of reviewed human images may reach likely_ai "
        f"(default {DEFAULT_FPR_TARGET})",
    )
    parser.add_argument(
        "--fnr-target",
        type=fraction,
        default=DEFAULT_FNR_TARGET,
        help="at most this share of reviewed AI images may fall in likely_human "
        f"(default {DEFAULT_FNR_TARGET})",
    )
    parser.add_argument(
        "--min-per-class",
        type=int_at_least(1),
        default=DEFAULT_MIN_PER_CLASS,
        help=f"refuse with fewer reviewer images of either class (default {DEFAULT_MIN_PER_CLASS})",
    )
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    return parser


def _pixels(
    exports: Sequence[Path], rows_per_export: Sequence[Sequence[ManifestRow]], progress: bool
) -> tuple[list[ManifestRow], list[np.ndarray]]:
    rows, arrays = [], []
    for folder, group in zip(exports, rows_per_export, strict=True):
        rows += list(group)
        arrays += load_export_pixels(folder, group, progress=progress)
    return rows, arrays


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = not args.no_progress
    weights_path = args.weights or default_weights_path()
    problem = output_problem(args.out, weights_path)  # the original stays as it was
    if problem:
        return report_error(PROG, f"--out: {problem}")
    try:
        loaded = load_weights(weights_path, args.weights_sha256)
    except WeightsError as exc:
        return report_error(PROG, str(exc))
    try:
        splits = read_exports(args.add, origins=["reviewer"])
    except ExportError as exc:
        return report_error(PROG, str(exc))

    fit_rows = [r for group in splits.train for r in group]
    counts = {label: sum(r.label == label for r in fit_rows) for label in ("human", "ai")}
    if min(counts.values()) < args.min_per_class:
        return report_error(
            PROG,
            f"the exports' train split holds {counts['human']} human and {counts['ai']} AI "
            f"reviewer-labelled images; calibrating needs at least {args.min_per_class} of "
            "each (--min-per-class). confident_score rows and the val slice are never used.",
        )
    if splits.dropped:
        print(f"{splits.dropped} train rows left out: their image is in an export's val slice")

    try:
        fit_rows, fit_arrays = _pixels(args.add, splits.train, progress)
        val_rows, val_arrays = _pixels(args.add, splits.val, progress)
    except ExportError as exc:
        return report_error(PROG, str(exc))
    fit_targets = np.array([r.target for r in fit_rows])
    fit_logits = release_logits(loaded, fit_arrays, progress=progress)
    calibration = fit_calibration(fit_logits, fit_targets)
    if not (math.isfinite(calibration.temperature) and math.isfinite(calibration.bias)):
        print("humanmade calibrate: error: the calibration fit diverged", file=sys.stderr)
        return 1
    probs = calibration.probability(fit_logits)
    cutoffs, met = choose_cutoffs(
        probs[fit_targets == 0], probs[fit_targets == 1], args.fpr_target, args.fnr_target
    )

    old_cal, old_cut = loaded.calibration, loaded.cutoffs
    print(f"weights: {weights_path} version {loaded.version} ({loaded.sha256[:12]})")
    print(f"calibration: {_cal_text(old_cal)} -> {_cal_text(calibration)}")
    report: dict[str, dict] = {
        "in_sample": {
            "before": calibration_figures(old_cal.probability(fit_logits), fit_targets, old_cut),
            "after": calibration_figures(probs, fit_targets, cutoffs),
        }
    }
    _print_comparison(
        f"IN-SAMPLE, on the {len(fit_rows)} images the refit was fitted on "
        f"({counts['human']} human, {counts['ai']} AI): 'after' flatters the refit",
        report["in_sample"]["before"],
        report["in_sample"]["after"],
        old_cut,
        cutoffs,
    )
    if val_rows:
        val_targets = np.array([r.target for r in val_rows])
        val_logits = release_logits(loaded, val_arrays, progress=progress)
        report["held_out"] = {
            "before": calibration_figures(old_cal.probability(val_logits), val_targets, old_cut),
            "after": calibration_figures(calibration.probability(val_logits), val_targets, cutoffs),
        }
        _print_comparison(
            f"HELD OUT, the exports' val slice ({len(val_rows)} reviewer-labelled images, "
            "not used for the fit)",
            report["held_out"]["before"],
            report["held_out"]["after"],
            old_cut,
            cutoffs,
        )
    else:
        print("no reviewer-labelled images in the exports' val slice: no held-out figures")
    if not met:
        print(
            f"warning: some reviewed human images score 1.0; no cut-off keeps their share of "
            f"likely_ai under {args.fpr_target:.1%}"
        )

    version = args.version or f"{loaded.version}-cal"
    names = ", ".join(folder.name or str(folder) for folder in args.add)
    extra = {k: v for k, v in loaded.metadata.items() if k not in _STALE_KEYS}
    extra |= {
        "parent_version": loaded.version,
        "parent_sha256": loaded.sha256,
        "calibrated_on": (
            f"{len(fit_rows)} reviewer-labelled images ({counts['human']} human, "
            f"{counts['ai']} AI) of the train split of review export(s) {names}; cut-offs "
            f"for at most {args.fpr_target:g} human in likely_ai and {args.fnr_target:g} AI "
            "in likely_human"
        ),
        "calibration_report": json.dumps(report),
    }
    try:
        sha = save_weights(
            args.out,
            loaded.model,
            calibration,
            version,
            loaded.tile_size,
            extra=extra,
            cutoffs=cutoffs,
            clip=loaded.clip,
            fusion=None if loaded.fusion.names == ("trace",) else loaded.fusion,
        )
    except OSError as exc:
        return report_error(PROG, f"cannot write the new weights: {exc}")
    print(f"wrote {args.out} (version {version}) sha256 {sha}")
    print("record that sha256 in the model card beside it, or the Detector loads it unverified")
    return 0


def _cal_text(cal: Calibration) -> str:
    return f"temperature {cal.temperature:.4f}, bias {cal.bias:+.4f}"


if __name__ == "__main__":
    raise SystemExit(main())
