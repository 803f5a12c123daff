"""The video evaluation's figures and its Markdown summary (`video_eval.py` computes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detector_core.verdict import BandCutoffs

from .evaluate import _save
from .metrics import roc_auc, roc_curve

if TYPE_CHECKING:
    from detector_core.clip_rule import ClipRule

    from .video_eval import Scored

BAND_ORDER = ("likely_human", "uncertain", "likely_ai")


def write_figures(
    items: list[Scored], rules: dict[str, ClipRule], cutoffs: BandCutoffs, out: Path
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame_t = np.array([s.clip.target for s in items for _ in s.probabilities])
    frame_p = np.array([p for s in items for p in s.probabilities])
    clip_t = np.array([s.clip.target for s in items])
    fig, ax = plt.subplots(figsize=(5, 5))
    fpr, tpr = roc_curve(frame_t, frame_p)
    ax.plot(fpr, tpr, label=f"frames (AUC {roc_auc(frame_t, frame_p):.3f})")
    for name, rule in rules.items():
        clip_p = np.array([rule.probability(s.probabilities) for s in items])
        fpr, tpr = roc_curve(clip_t, clip_p)
        ax.plot(fpr, tpr, label=f"clips, {name} (AUC {roc_auc(clip_t, clip_p):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
    ax.set(xlabel="false-positive rate (human called AI)", ylabel="true-positive rate")
    ax.set_title("ROC on held-out video sources", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    paths = [_save(fig, out / "roc.png")]

    rule = next(iter(rules.values()))
    order = sorted(range(len(items)), key=lambda i: (items[i].clip.label, items[i].clip.file))
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(items) + 1.2))
    for row, i in enumerate(order):
        s = items[i]
        colour = "#c0392b" if s.clip.target else "#2e86c1"
        ax.scatter(s.probabilities, [row] * len(s.probabilities), s=8, color=colour, alpha=0.4)
        ax.scatter([rule.probability(s.probabilities)], [row], marker="|", s=120, color="black")
    ax.set_yticks(range(len(order)))
    labels = [f"{items[i].clip.label}: {items[i].clip.source_group}" for i in order]
    ax.set_yticklabels(labels, fontsize=6)
    for cut in (cutoffs.human, cutoffs.ai):
        ax.axvline(cut, color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlim=(0, 1), xlabel="probability of AI (dots: frames; bar: the clip)")
    ax.set_title("Held-out clips: frames and clip verdicts", fontsize=10)
    paths.append(_save(fig, out / "clips.png"))
    return paths


def markdown(report: dict) -> str:
    lines = [
        f"# Video evaluation — model {report['model_version']}",
        "",
        f"Corpus: {report['corpus']['clips']} clips ({report['corpus']['by_split']}); "
        f"{report['frames_per_clip']} frames sampled per clip; clips that could not be "
        f"scored: {len(report['unscored'])}.",
        "",
        "## Choosing the rule (train sources only, leave one source out)",
        "",
        "| candidate | balanced log loss | AUC |",
        "|---|---|---|",
    ]
    for name, row in report["choice"].items():
        lines.append(f"| {name} | {row['log_loss']:.3f} | {row['auc']:.3f} |")
    lines += ["", f"Chosen: **{report['rule']['describe']}**", ""]
    lines += ["## Held-out sources (val)", ""]
    head = "| rule | frame AUC | clip AUC | AI clips: human / uncertain / AI band | "
    lines += [head + "human clips: human / uncertain / AI band |", "|---|---|---|---|---|"]
    for name, row in report["val"].items():
        a, h = row["ai_clips_by_band"], row["human_clips_by_band"]
        lines.append(
            f"| {name} | {row.get('frame_auc', float('nan')):.3f} | "
            f"{row.get('clip_auc', float('nan')):.3f} | "
            + " / ".join(str(a[b]) for b in BAND_ORDER)
            + " | "
            + " / ".join(str(h[b]) for b in BAND_ORDER)
            + " |"
        )
    check = report["human_val_as_previews"]
    lines += [
        "",
        "## The same human held-out clips as 350 px animated WebP previews (the AI clips' form)",
        "",
        f"{check['higher_as_preview']} of {check['clips']} score higher; mean logit shift "
        f"{check['mean_logit_shift']:+.2f}; bands as previews "
        + " / ".join(str(check["as_preview_by_band"][b]) for b in BAND_ORDER)
        + " (human / uncertain / AI).",
        "Clip AUC of the held-out AI clips against these previews: "
        + (
            "n/a"
            if check["clip_auc_ai_against_previews"] is None
            else f"{check['clip_auc_ai_against_previews']:.3f}"
        )
        + ".",
    ]
    n_human = next(iter(report["val"].values()))["clips"]["human"]
    lines += ["", f"Small counts: {n_human} held-out human clips, one clip is 1/{n_human} of them."]
    return "\n".join(lines) + "\n"
