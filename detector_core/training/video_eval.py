"""How well clips are judged, and the clip rule fitted on labelled clips.

    humanmade video-eval [--corpus DIR] [--weights FILE] [--out DIR] [--rule-out FILE]

Scores every clip of the video corpus (`humanmade data build-video`) with
`Detector.score_video` (the product's own sampling, pixels only: the files' provenance
would otherwise decide the ComfyUI clips by their metadata), caches each clip's frame
probabilities by sha256, model and sample size, then:

1. **Fits the clip rule on the `train` clips only.** Candidates: a statistic of the frames'
   calibrated logits (mean, median, mean of the top 3) followed by a Platt scaling
   (temperature and bias) fitted on the clip labels; and the unfitted mean (the image
   calibration as it is). The statistic is chosen by leave-one-source-out log loss over
   the `train` sources, so the choice never sees a held-out clip.
2. **Checks it on the `val` clips** (sources held out from the rule and, for the AI
   families, from the CLIP head's training): frame-level AUC (every scored frame carries
   its clip's label), clip-level AUC, the share of AI clips at `likely_ai` and the human
   clips at `likely_ai` / `possibly_ai`, with counts, for the fitted rule and the unfitted
   mean side by side.
3. Writes `report.json`, `report.md`, `roc.png` (frames vs clips) and `clips.png` (each
   held-out clip's frame probabilities and its clip probability), and with `--rule-out`
   the rule file the detector reads beside its weights (`<weights>.video.json`).

Reserved sources and held-out sha256s are refused, as everywhere in training.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from detector_core.clip_rule import STATISTICS, UNFITTED, ClipRule, frame_logits
from detector_core.errors import HumanmadeError
from detector_core.verdict import BandCutoffs

from .corpus import reserved_match
from .metrics import roc_auc, roc_curve

CACHE_NAME = "frames.json"


@dataclass(frozen=True)
class Clip:
    file: str
    split: str
    label: str
    source_group: str
    generator: str
    content: str
    kind: str
    sha256: str
    origin: str

    @property
    def target(self) -> int:
        return int(self.label == "ai")


@dataclass
class Scored:
    clip: Clip
    probabilities: list[float]  # the frames' calibrated probabilities, in time order
    times: list[float]
    error: str = ""


# --------------------------------------------------------------------------- corpus


def read_manifest(corpus: Path, reserved: set[str], excluded: set[str]) -> list[Clip]:
    """The corpus's clips; a reserved source or a held-out file stops everything."""
    import csv

    path = corpus / "manifest.csv"
    if not path.is_file():
        raise HumanmadeError(
            f"no video corpus at {corpus} (manifest.csv missing); build it with "
            "`humanmade data build-video`"
        )
    clips = []
    with path.open(newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            clip = Clip(**{k: raw[k] for k in Clip.__dataclass_fields__})
            package = clip.origin.split("@", 1)[0]
            hit = reserved_match(package, reserved)
            if hit is not None or clip.sha256 in excluded:
                raise HumanmadeError(f"{clip.file} comes from a reserved or held-out source")
            clips.append(clip)
    return clips


def score_corpus(
    clips: list[Clip],
    corpus: Path,
    weights: Path | None,
    frames: int,
    cache_path: Path,
    progress: bool = True,
) -> list[Scored]:
    """Every clip's frame probabilities, from the cache where the same model and sample
    size already scored it."""
    from detector_core.detector import Detector
    from detector_core.video import VideoLimits

    detector = Detector(weights, provenance=False)
    key_prefix = f"{detector.loaded.sha256[:16]}:{frames}:"
    cache: dict[str, dict] = {}
    if cache_path.is_file():
        cache = json.loads(cache_path.read_text())
    limits = VideoLimits(frames_scored=frames)
    out = []
    bar = tqdm(clips, unit="clip", desc="scoring clips", disable=not progress)
    for clip in bar:
        key = key_prefix + clip.sha256
        if key not in cache:
            try:
                verdict = detector.score_video(corpus / clip.file, limits=limits)
                cache[key] = {
                    "p": [f.ai_probability for f in verdict.frames],
                    "t": [f.time_s for f in verdict.frames],
                }
            except HumanmadeError as exc:
                cache[key] = {"p": [], "t": [], "error": str(exc)}
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache))
        entry = cache[key]
        out.append(Scored(clip, entry["p"], entry["t"], entry.get("error", "")))
    return out


# --------------------------------------------------------------------------- the rule


def _statistic(item: Scored, statistic: str) -> float:
    return STATISTICS[statistic](frame_logits(item.probabilities))


def _balanced_weights(targets: np.ndarray) -> np.ndarray:
    # Each class weighs half: the clip lists hold several AI clips per human one, and a
    # prior learned from that would push every human clip toward "AI".
    n_ai, n_human = int(targets.sum()), int((targets == 0).sum())
    return np.where(targets == 1, 0.5 / max(n_ai, 1), 0.5 / max(n_human, 1)) * len(targets)


def fit_rule(train: list[Scored], statistic: str, fitted_on: str = "") -> ClipRule:
    """Platt scaling of `statistic` on these clips, both classes weighed equally."""
    from detector_core.calibration import fit_calibration

    x = np.array([_statistic(s, statistic) for s in train])
    y = np.array([s.clip.target for s in train], dtype=float)
    cal = fit_calibration(x, y, sample_weights=_balanced_weights(y))
    return ClipRule(statistic, cal.temperature, cal.bias, fitted_on=fitted_on)


def _log_loss(targets: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> float:
    p = np.clip(probs, 1e-6, 1 - 1e-6)
    losses = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    return float((losses * weights).sum() / weights.sum())


def loso_choice(train: list[Scored]) -> dict[str, dict]:
    """Each candidate's balanced log loss and AUC on `train`, every source predicted by a
    rule fitted on the other sources; the unfitted mean is scored as it is."""
    groups = sorted({s.clip.source_group for s in train})
    targets = np.array([s.clip.target for s in train], dtype=float)
    weights = _balanced_weights(targets)
    out: dict[str, dict] = {}
    for statistic in STATISTICS:
        probs = np.zeros(len(train))
        for group in groups:
            rest = [s for s in train if s.clip.source_group != group]
            if len({s.clip.target for s in rest}) < 2:
                continue
            rule = fit_rule(rest, statistic)
            for i, s in enumerate(train):
                if s.clip.source_group == group:
                    probs[i] = rule.probability(s.probabilities)
        out[f"{statistic}, fitted"] = {
            "log_loss": _log_loss(targets, probs, weights),
            "auc": roc_auc(targets, probs),
        }
    probs = np.array([UNFITTED.probability(s.probabilities) for s in train])
    out["mean, unfitted"] = {
        "log_loss": _log_loss(targets, probs, weights),
        "auc": roc_auc(targets, probs),
    }
    return out


# --------------------------------------------------------------------------- figures


def held_out_report(items: list[Scored], rule: ClipRule, cutoffs: BandCutoffs) -> dict:
    """Frame-level and clip-level figures of `items` under `rule`, with counts."""
    frame_t = np.array([s.clip.target for s in items for _ in s.probabilities])
    frame_p = np.array([p for s in items for p in s.probabilities])
    clip_t = np.array([s.clip.target for s in items])
    clip_p = np.array([rule.probability(s.probabilities) for s in items])
    ai, human = clip_t == 1, clip_t == 0
    out: dict = {
        "rule": rule.describe(),
        "clips": {"ai": int(ai.sum()), "human": int(human.sum())},
        "frames": {"ai": int(frame_t.sum()), "human": int((frame_t == 0).sum())},
    }
    if ai.any() and human.any():
        out["frame_auc"] = roc_auc(frame_t, frame_p)
        out["clip_auc"] = roc_auc(clip_t, clip_p)
    if ai.any():
        n = int((clip_p[ai] >= cutoffs.ai).sum())
        out["ai_clips_at_likely_ai"] = {"count": n, "of": int(ai.sum()), "share": n / ai.sum()}
        n = int((clip_p[ai] < cutoffs.human).sum())
        out["ai_clips_at_likely_human"] = {"count": n, "of": int(ai.sum())}
    if human.any():
        for band, mask in (
            ("likely_ai", clip_p[human] >= cutoffs.ai),
            ("possibly_ai", (clip_p[human] >= 0.5) & (clip_p[human] < cutoffs.ai)),
        ):
            out[f"human_clips_at_{band}"] = {"count": int(mask.sum()), "of": int(human.sum())}
        frames_h = frame_p[frame_t == 0]
        out["human_frames_at_likely_ai"] = {
            "count": int((frames_h >= cutoffs.ai).sum()),
            "of": len(frames_h),
        }
    out["per_clip"] = [
        {
            "file": s.clip.file.rsplit("/", 1)[-1],
            "label": s.clip.label,
            "source_group": s.clip.source_group,
            "generator": s.clip.generator,
            "content": s.clip.content,
            "frames": len(s.probabilities),
            "clip_probability": round(float(p), 4),
            "band": cutoffs.band(float(p)).value,
        }
        for s, p in zip(items, clip_p, strict=True)
    ]
    return out


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


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _markdown(report: dict) -> str:
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
    head = "| rule | frame AUC | clip AUC | AI clips at likely_ai | human clips at likely_ai |"
    lines += [head, "|---|---|---|---|---|"]
    for name, row in report["val"].items():
        a, h = row.get("ai_clips_at_likely_ai", {}), row.get("human_clips_at_likely_ai", {})
        lines.append(
            f"| {name} | {row.get('frame_auc', float('nan')):.3f} | "
            f"{row.get('clip_auc', float('nan')):.3f} | {a.get('count')}/{a.get('of')} | "
            f"{h.get('count')}/{h.get('of')} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    from .corpus import DEFAULT_EXCLUDE, DEFAULT_RESERVED, read_excluded, read_reserved
    from .video_corpus import default_video_out

    parser = argparse.ArgumentParser(
        prog="humanmade video-eval", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--corpus", type=Path, default=None, help="the built video corpus")
    parser.add_argument("--weights", type=Path, default=None, help="the release to evaluate")
    parser.add_argument("--frames", type=int, default=8, help="frames scored per clip")
    parser.add_argument("--out", type=Path, default=Path("reports/video"))
    parser.add_argument("--rule-out", type=Path, default=None, help="write the fitted rule")
    parser.add_argument("--reserved", type=Path, default=DEFAULT_RESERVED)
    parser.add_argument("--exclude", type=Path, default=DEFAULT_EXCLUDE)
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    try:
        report = run(args, default_video_out, read_reserved, read_excluded)
    except HumanmadeError as exc:
        print(f"humanmade video-eval: error: {exc}", file=sys.stderr)
        return 1
    print(_markdown(report), end="")
    return 0


def run(args: argparse.Namespace, default_out, read_reserved, read_excluded) -> dict:
    from collections import Counter

    from detector_core.clip_rule import save_rule
    from detector_core.weights import default_weights_path, load_weights

    corpus = (args.corpus or default_out()).expanduser()
    clips = read_manifest(corpus, read_reserved(args.reserved), read_excluded(args.exclude))
    weights = args.weights or default_weights_path()
    loaded = load_weights(weights)
    scored = score_corpus(clips, corpus, weights, args.frames, args.out / CACHE_NAME)
    usable = [s for s in scored if s.probabilities]
    train = [s for s in usable if s.clip.split == "train"]
    val = [s for s in usable if s.clip.split == "val"]
    for name, part in (("train", train), ("val", val)):
        if len({s.clip.target for s in part}) < 2:
            raise HumanmadeError(f"the {name} clips need both AI and human clips")
    choice = loso_choice(train)
    best = min(choice, key=lambda k: choice[k]["log_loss"])
    statistic = best.split(",")[0]
    groups = len({s.clip.source_group for s in train})
    fitted_on = f"{len(train)} clips of {groups} train sources"
    if best.endswith("unfitted"):
        rule = UNFITTED
    else:
        rule = fit_rule(train, statistic, fitted_on=fitted_on)
    cutoffs = loaded.cutoffs
    rules = {"chosen rule": rule, "unfitted mean": UNFITTED}
    report = {
        "model_version": loaded.version,
        "weights_sha256": loaded.sha256,
        "frames_per_clip": args.frames,
        "corpus": {
            "clips": len(clips),
            "by_split": dict(Counter(f"{c.split} {c.label}" for c in clips)),
        },
        "unscored": [{"file": s.clip.file, "error": s.error} for s in scored if s.error],
        "choice": choice,
        "rule": {**rule.__dict__, "describe": rule.describe()},
        "val": {name: held_out_report(val, r, cutoffs) for name, r in rules.items()},
        "train_fit": held_out_report(train, rule, cutoffs),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "report.md").write_text(_markdown(report))
    write_figures(val, rules, cutoffs, args.out)
    if args.rule_out is not None:
        save_rule(rule, weights, loaded.sha256, args.rule_out)
    return report


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
