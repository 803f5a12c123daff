"""The release gate: compare a candidate model with the current one on the same held-out images.

    humanmade gate --current weights/humanmade.safetensors --candidate new.safetensors \\
        --add exports/2025-06 --out reports/gate

Eval sets: the shared dataset's `val` split, and for each `--add EXPORT_DIR` the export's
held-out slice (`split == "val"`) restricted to rows a reviewer labelled. Rows labelled by
`confident_score` are left out on purpose: their labels are the deployed model's own output,
so gating on them would reward a candidate for agreeing with the current model (circular).
Train-split rows are left out because the candidate may have been trained on them.

Each model is scored with its own calibration and band cut-offs, as it would be deployed.
The candidate is refused when, on any eval set (or all pooled), its AUC falls more than
`--max-auc-drop` below the current model's, or the share of human images it puts in the
`likely_ai` band rises more than `--max-fpr-rise`: false positives on human work are the
harm that matters most. Exit codes: 0 accepted, 1 refused, 2 usage or data error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..argtypes import fraction, int_at_least, report_error
from ..calibration import expected_calibration_error
from ..errors import HumanmadeError, WeightsError
from ..intake import IntakeLimits, load_image
from ..tiling import MIN_SIDE
from ..verdict import BandCutoffs
from ..weights import LoadedWeights, default_weights_path, load_weights
from .data import ManifestRow, default_dataset_dir, read_manifest
from .evaluate import release_logits, sample_rows
from .feedback import ExportError, read_export
from .metrics import roc_auc, roc_curve
from .sources import usable

PROG = "humanmade gate"

EXIT_ACCEPTED = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

SHARED_SET = "shared val"
POOLED = "all pooled"
# Only a person's decision is independent of the model being replaced.
GATE_ORIGINS = ("reviewer",)
# A change exactly at the margin passes; float rounding (0.01 + 0.005) must not refuse it.
_EPS = 1e-9


class GateError(ValueError):
    """The gate cannot run: no usable eval data, or an unreadable export or dataset."""


@dataclass(frozen=True)
class Margins:
    """How much worse than the current model a candidate may be and still pass.

    The defaults allow for noise on a few hundred images while refusing a real loss: one more
    human image in `likely_ai` per 200 human images, or a hundredth of AUC.
    """

    max_auc_drop: float = 0.01
    max_fpr_rise: float = 0.005

    def __post_init__(self) -> None:
        for name in ("max_auc_drop", "max_fpr_rise"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class EvalSet:
    """Rows of one held-out set; `root` is the folder their `file` paths are relative to."""

    name: str
    root: Path
    rows: tuple[ManifestRow, ...]


@dataclass(frozen=True)
class ModelMetrics:
    """One model's figures on one eval set (None where the set lacks the class it needs)."""

    auc: float | None
    fpr_likely_ai: float | None  # human images at or above the model's `ai` cut-off
    tpr_likely_ai: float | None  # AI images at or above it
    ece: float | None
    # Images scored NaN or infinite (diverged weights or calibration). NaN compares false
    # with every cut-off, so such a model looks free of false positives; it must not pass.
    non_finite: int = 0

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "auc": self.auc,
            "fpr_likely_ai": self.fpr_likely_ai,
            "tpr_likely_ai": self.tpr_likely_ai,
            "ece": self.ece,
            "non_finite": self.non_finite,
        }


@dataclass(frozen=True)
class GateRow:
    eval_set: str
    n_human: int
    n_ai: int
    skipped: int  # images that could not be decoded (or are too small to score)
    current: ModelMetrics
    candidate: ModelMetrics

    def to_dict(self) -> dict[str, Any]:
        return {
            "eval_set": self.eval_set,
            "n_human": self.n_human,
            "n_ai": self.n_ai,
            "skipped": self.skipped,
            "current": self.current.to_dict(),
            "candidate": self.candidate.to_dict(),
        }


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    version: str
    sha256: str
    temperature: float
    bias: float
    cutoffs: BandCutoffs

    @classmethod
    def of(cls, loaded: LoadedWeights) -> ModelInfo:
        return cls(
            path=loaded.path,
            version=loaded.version,
            sha256=loaded.sha256,
            temperature=loaded.calibration.temperature,
            bias=loaded.calibration.bias,
            cutoffs=loaded.cutoffs,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "version": self.version,
            "sha256": self.sha256,
            "calibration": {"temperature": self.temperature, "bias": self.bias},
            "cutoffs": {"human": self.cutoffs.human, "ai": self.cutoffs.ai},
        }


@dataclass(frozen=True)
class SetScores:
    """What the plots need: targets and each model's calibrated probabilities."""

    targets: np.ndarray
    current: np.ndarray
    candidate: np.ndarray


@dataclass
class GateResult:
    accepted: bool
    reasons: list[str]
    rows: list[GateRow]
    current: ModelInfo
    candidate: ModelInfo
    margins: Margins
    warnings: list[str] = field(default_factory=list)
    scores: dict[str, SetScores] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "margins": {
                "max_auc_drop": self.margins.max_auc_drop,
                "max_fpr_rise": self.margins.max_fpr_rise,
            },
            "current": self.current.to_dict(),
            "candidate": self.candidate.to_dict(),
            "rows": [r.to_dict() for r in self.rows],
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------- eval sets


def shared_eval_set(data_dir: Path, sample: int = 0) -> EvalSet:
    """The shared dataset's `val` split less reserved sources and sealed-set originals;
    `sample` > 0 takes a seeded, label-stratified sample."""
    try:
        rows = usable(read_manifest(data_dir, "val"))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise GateError(f"cannot read the dataset {data_dir}: {exc}") from exc
    return EvalSet(SHARED_SET, data_dir, tuple(sample_rows(rows, sample)))


def export_eval_set(export_dir: Path) -> EvalSet:
    """An export's held-out slice, reviewer-labelled rows only (see the module docstring)."""
    try:
        rows = read_export(export_dir, split="val", origins=GATE_ORIGINS)
    except ExportError as exc:
        raise GateError(str(exc)) from exc
    # read_export already filters; this keeps the gate's rule visible where it is enforced.
    kept = [r for r in rows if r.split == "val" and r.label_origin in GATE_ORIGINS]
    return EvalSet(f"export {export_dir.name or export_dir}", export_dir, tuple(kept))


def build_eval_sets(
    data_dir: Path | None,
    exports: Sequence[Path] = (),
    sample: int = 0,
    use_shared: bool = True,
) -> tuple[list[EvalSet], list[str]]:
    """The eval sets for the given options, and notes on what was left out.

    An explicitly given `data_dir` must be readable; the default one is skipped when absent
    (a site without the shared dataset gates on its own exports alone).
    """
    sets: list[EvalSet] = []
    notes: list[str] = []
    if use_shared:
        folder = data_dir or default_dataset_dir()
        if data_dir is not None or (folder / "manifest.csv").is_file():
            sets.append(shared_eval_set(folder, sample))
        else:
            notes.append(f"no shared dataset at {folder}; gating on exports only")
    for export in exports:
        found = export_eval_set(export)
        if any(s.name == found.name for s in sets):  # two exports with the same folder name
            found = EvalSet(f"{found.name} ({export})", found.root, found.rows)
        sets.append(found)
    return sets, notes


# --------------------------------------------------------------------------- scoring


def _decode(eval_set: EvalSet) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Pixels and targets of the images that decode; a bad image is counted, not fatal."""
    limits = IntakeLimits()
    arrays, targets, skipped = [], [], 0
    for row in eval_set.rows:
        try:
            pixels = np.asarray(load_image(eval_set.root / row.file, limits).image, np.uint8)
        except (HumanmadeError, OSError):
            skipped += 1
            continue
        if min(pixels.shape[:2]) < MIN_SIDE:  # the Detector refuses these too
            skipped += 1
            continue
        arrays.append(pixels)
        targets.append(row.target)
    return arrays, np.array(targets, dtype=int), skipped


def _metrics(targets: np.ndarray, probs: np.ndarray, cutoffs: BandCutoffs) -> ModelMetrics:
    human, ai = targets == 0, targets == 1
    return ModelMetrics(
        auc=roc_auc(targets, probs) if human.any() and ai.any() else None,
        fpr_likely_ai=float(np.mean(probs[human] >= cutoffs.ai)) if human.any() else None,
        tpr_likely_ai=float(np.mean(probs[ai] >= cutoffs.ai)) if ai.any() else None,
        ece=expected_calibration_error(probs, targets) if len(targets) else None,
        non_finite=int((~np.isfinite(probs)).sum()),
    )


def _row(name: str, scores: SetScores, skipped: int, cur: ModelInfo, cand: ModelInfo) -> GateRow:
    return GateRow(
        eval_set=name,
        n_human=int((scores.targets == 0).sum()),
        n_ai=int((scores.targets == 1).sum()),
        skipped=skipped,
        current=_metrics(scores.targets, scores.current, cur.cutoffs),
        candidate=_metrics(scores.targets, scores.candidate, cand.cutoffs),
    )


def decide(rows: Sequence[GateRow], margins: Margins) -> list[str]:
    """Reasons to refuse the candidate; empty when it passes."""
    reasons = []
    for row in rows:
        cur, cand = row.current, row.candidate
        if cand.non_finite:
            reasons.append(
                f"the candidate scored {cand.non_finite} image(s) of {row.eval_set} as NaN or "
                "infinite (diverged weights or calibration); its figures mean nothing"
            )
            continue
        both_auc = cur.auc is not None and cand.auc is not None
        if both_auc and cand.auc < cur.auc - margins.max_auc_drop - _EPS:
            reasons.append(
                f"AUC on {row.eval_set} fell from {cur.auc:.4f} to {cand.auc:.4f} "
                f"(more than the allowed drop of {margins.max_auc_drop:g})"
            )
        both_fpr = cur.fpr_likely_ai is not None and cand.fpr_likely_ai is not None
        if both_fpr and cand.fpr_likely_ai > cur.fpr_likely_ai + margins.max_fpr_rise + _EPS:
            reasons.append(
                f"human images in likely_ai on {row.eval_set} rose from "
                f"{cur.fpr_likely_ai:.4f} to {cand.fpr_likely_ai:.4f} "
                f"(more than the allowed rise of {margins.max_fpr_rise:g})"
            )
    return reasons


def run_gate(
    current: Path,
    candidate: Path,
    eval_sets: Sequence[EvalSet],
    margins: Margins | None = None,
    progress: bool = False,
) -> GateResult:
    """Score both models on every eval set and decide.

    Raises WeightsError for missing or damaged weights and GateError when no eval set holds
    both human and AI images (without both, AUC cannot be compared and the gate proves little).
    """
    margins = margins or Margins()
    cur_w = load_weights(Path(current))
    cand_w = load_weights(Path(candidate))
    cur, cand = ModelInfo.of(cur_w), ModelInfo.of(cand_w)
    rows: list[GateRow] = []
    scores: dict[str, SetScores] = {}
    warnings: list[str] = []
    pooled: list[SetScores] = []
    for eval_set in eval_sets:
        if not eval_set.rows:
            warnings.append(f"{eval_set.name}: no rows to gate on; left out")
            continue
        arrays, targets, skipped = _decode(eval_set)
        if skipped:
            warnings.append(
                f"{eval_set.name}: skipped {skipped} of {len(eval_set.rows)} images "
                "that could not be decoded or are too small"
            )
        if not arrays:
            continue
        set_scores = SetScores(
            targets=targets,
            current=cur_w.calibration.probability(release_logits(cur_w, arrays, progress)),
            candidate=cand_w.calibration.probability(release_logits(cand_w, arrays, progress)),
        )
        scores[eval_set.name] = set_scores
        rows.append(_row(eval_set.name, set_scores, skipped, cur, cand))
        pooled.append(set_scores)
        if rows[-1].current.non_finite:
            warnings.append(
                f"{eval_set.name}: the current model scored {rows[-1].current.non_finite} "
                "image(s) as NaN or infinite; comparisons with it are unreliable"
            )
    if not any(r.n_human and r.n_ai for r in rows):
        names = ", ".join(s.name for s in eval_sets) or "none given"
        raise GateError(
            "no eval set holds both human and AI images, so the models cannot be compared "
            f"(eval sets: {names}). Pass --data with a val split, or --add an export with "
            "reviewer-labelled held-out rows."
        )
    if len(pooled) > 1:
        all_scores = SetScores(
            targets=np.concatenate([s.targets for s in pooled]),
            current=np.concatenate([s.current for s in pooled]),
            candidate=np.concatenate([s.candidate for s in pooled]),
        )
        scores[POOLED] = all_scores
        rows.append(_row(POOLED, all_scores, sum(r.skipped for r in rows), cur, cand))
    reasons = decide(rows, margins)
    return GateResult(
        accepted=not reasons,
        reasons=reasons,
        rows=rows,
        current=cur,
        candidate=cand,
        margins=margins,
        warnings=warnings,
        scores=scores,
    )


# --------------------------------------------------------------------------- output


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


TABLE_HEADER = (
    "eval set",
    "human",
    "AI",
    "AUC current",
    "AUC candidate",
    "FPR@likely_ai current",
    "FPR@likely_ai candidate",
    "TPR@likely_ai current",
    "TPR@likely_ai candidate",
    "ECE current",
    "ECE candidate",
)


def table_rows(result: GateResult) -> list[list[str]]:
    """The before/after figures as text cells, in TABLE_HEADER order."""
    out = []
    for r in result.rows:
        cells = [r.eval_set, str(r.n_human), str(r.n_ai)]
        for key in ("auc", "fpr_likely_ai", "tpr_likely_ai", "ece"):
            cells += [_fmt(getattr(r.current, key)), _fmt(getattr(r.candidate, key))]
        out.append(cells)
    return out


def format_table(result: GateResult) -> str:
    """A plain, aligned text table for the terminal: each figure as `current → candidate`."""
    header = ["eval set", "human", "AI", "AUC", "human in likely_ai", "AI in likely_ai", "ECE"]
    lines = [header]
    for r in result.rows:
        cells = [r.eval_set, str(r.n_human), str(r.n_ai)]
        for key in ("auc", "fpr_likely_ai", "tpr_likely_ai", "ece"):
            cells.append(f"{_fmt(getattr(r.current, key))} → {_fmt(getattr(r.candidate, key))}")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def aligned(line: list[str]) -> str:
        # The set name left-aligned, figures right-aligned.
        cells = [line[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    return "\n".join([*(aligned(line) for line in lines), "(figures: current → candidate)"])


def markdown_table(result: GateResult) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(result)]
    return "\n".join(lines)


def write_gate_plot(result: GateResult, path: Path) -> Path:
    """ROC curves of both models per eval set, and human FPR at likely_ai as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .evaluate import _save

    with_roc = [r for r in result.rows if r.n_human and r.n_ai]
    panels = len(with_roc) + 1
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.2), squeeze=False)
    labels = {
        "current": f"current {result.current.version}",
        "candidate": f"candidate {result.candidate.version}",
    }
    for ax, row in zip(axes[0], with_roc, strict=False):
        s = result.scores[row.eval_set]
        for which, style in (("current", "-"), ("candidate", "--")):
            probs = getattr(s, which)
            fpr, tpr = roc_curve(s.targets, probs)
            auc = getattr(row, which).auc
            ax.plot(fpr, tpr, style, label=f"{labels[which]} (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=0.8)
        ax.set(
            xlabel="false-positive rate",
            ylabel="true-positive rate",
            title=f"ROC — {row.eval_set} ({row.n_human} human, {row.n_ai} AI)",
        )
        ax.title.set_fontsize(9)
        ax.legend(loc="lower right", fontsize=8)
    ax = axes[0][-1]
    fpr_rows = [r for r in result.rows if r.n_human]
    x = np.arange(len(fpr_rows))
    top = 0.0
    for offset, which in ((-0.2, "current"), (0.2, "candidate")):
        values = [getattr(r, which).fpr_likely_ai or 0.0 for r in fpr_rows]
        bars = ax.bar(x + offset, values, width=0.4, label=labels[which])
        ax.bar_label(bars, [f"{v:.1%}" for v in values], fontsize=7)
        top = max([top, *values])
    ax.set_xticks(x, [r.eval_set for r in fpr_rows], rotation=20, ha="right", fontsize=8)
    # Room above the bars for labels and legend; a visible scale even when all are zero.
    ax.set_ylim(0, max(0.05, top * 1.35))
    ax.set(ylabel="share of human images", title="human images in likely_ai")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    fig.suptitle("ACCEPTED" if result.accepted else "REFUSED")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, path)


def print_result(result: GateResult, out: Callable[[str], None] = print) -> None:
    cur, cand = result.current, result.candidate
    out(f"current   {cur.version}  ({cur.path}, sha256 {cur.sha256[:12]}…)")
    out(f"candidate {cand.version}  ({cand.path}, sha256 {cand.sha256[:12]}…)")
    out(format_table(result))
    if result.accepted:
        out(
            f"ACCEPTED: no eval set lost more than {result.margins.max_auc_drop:g} AUC or "
            f"gained more than {result.margins.max_fpr_rise:g} human FPR at likely_ai."
        )
    else:
        out("REFUSED:")
        for reason in result.reasons:
            out(f"  - {reason}")


# --------------------------------------------------------------------------- command line


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `gate` and `release`."""
    parser.add_argument(
        "--current",
        type=Path,
        default=None,
        help="the model in use (default: $HUMANMADE_WEIGHTS, else the committed release)",
    )
    parser.add_argument(
        "--data", type=Path, default=None, help="shared dataset folder (its val split is used)"
    )
    parser.add_argument("--no-shared", action="store_true", help="gate on the --add exports only")
    parser.add_argument(
        "--add",
        type=Path,
        action="append",
        default=[],
        metavar="EXPORT_DIR",
        help="an export from `manage.py humanmade_export`: its reviewer-labelled held-out "
        "rows become an eval set (repeatable)",
    )
    parser.add_argument(
        "--sample",
        type=int_at_least(0),
        default=0,
        metavar="N",
        help="score a seeded, label-stratified sample of N shared val images (default: all)",
    )
    parser.add_argument(
        "--max-auc-drop",
        type=fraction,
        default=Margins.max_auc_drop,
        help=f"refuse when AUC falls by more than this on any set (default {Margins.max_auc_drop})",
    )
    parser.add_argument(
        "--max-fpr-rise",
        type=fraction,
        default=Margins.max_fpr_rise,
        help="refuse when the share of human images in likely_ai rises by more than this "
        f"on any set (default {Margins.max_fpr_rise})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def gate_from_args(args: argparse.Namespace) -> GateResult:
    """Build the eval sets from parsed options and run the gate (raises GateError, WeightsError)."""
    sets, notes = build_eval_sets(args.data, args.add, args.sample, not args.no_shared)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not sets:
        raise GateError("no eval set: drop --no-shared, or --add an export folder")
    current = args.current or default_weights_path()
    result = run_gate(
        current,
        args.candidate,
        sets,
        Margins(args.max_auc_drop, args.max_fpr_rise),
        progress=not args.no_progress,
    )
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--candidate", type=Path, required=True, help="the .safetensors file to judge"
    )
    add_eval_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports/gate"),
        help="folder for gate.json and gate.png (default: reports/gate)",
    )
    args = parser.parse_args(argv)
    try:
        result = gate_from_args(args)
    except (GateError, WeightsError) as exc:
        report_error(PROG, str(exc))
        return EXIT_USAGE
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gate.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        plot = write_gate_plot(result, args.out / "gate.png")
    except OSError as exc:
        report_error(PROG, f"cannot write to {args.out}: {exc}")
        return EXIT_USAGE
    print_result(result)
    print(f"wrote {args.out / 'gate.json'}, {plot}")
    return EXIT_ACCEPTED if result.accepted else EXIT_REFUSED


if __name__ == "__main__":
    raise SystemExit(main())
