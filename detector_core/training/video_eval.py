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
   its clip's label), clip-level AUC, and how many AI and human clips land in each band,
   with counts, for the chosen rule and the unfitted mean side by side.
3. **Checks the form**: every AI clip is a ComfyUI preview (350 px lossy animated WebP) and
   most human clips are camera files, so the held-out human clips are scored again as such
   previews; the shift says how much of the separation the form alone could carry.
4. Writes `report.json`, `report.md`, `roc.png` (frames vs clips) and `clips.png` (each
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
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from detector_core.clip_rule import STATISTICS, UNFITTED, ClipRule, frame_logits
from detector_core.errors import HumanmadeError
from detector_core.verdict import BandCutoffs

from .corpus import reserved_match
from .metrics import roc_auc
from .video_report import BAND_ORDER, markdown, write_figures

if TYPE_CHECKING:
    from detector_core.detector import Detector

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
    detector: Detector,
    frames: int,
    cache_path: Path,
    progress: bool = True,
) -> list[Scored]:
    """Every clip's frame probabilities, from the cache where the same model and sample
    size already scored it."""
    from detector_core.video import VideoLimits

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


PREVIEW_SIDE = 350  # ComfyUI's template previews: 350×350 lossy animated WebP


def as_preview(frames: list) -> bytes:
    """Frames as a ComfyUI-style preview: short side down to 350 px (never up), the
    centre square, lossy animated WebP at Pillow's default quality."""
    import io

    from PIL import Image

    pictures = []
    for image in frames:
        scale = min(1.0, PREVIEW_SIDE / min(image.size))
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        small = image.resize(size, Image.Resampling.LANCZOS) if scale < 1 else image
        side = min(small.size)
        left, top = (small.width - side) // 2, (small.height - side) // 2
        pictures.append(small.crop((left, top, left + side, top + side)))
    buf = io.BytesIO()
    pictures[0].save(buf, "WEBP", save_all=True, append_images=pictures[1:], duration=100)
    return buf.getvalue()


def preview_check(
    items: list[Scored],
    corpus: Path,
    detector: Detector,
    frames: int,
    cache_path: Path,
    cutoffs: BandCutoffs,
) -> dict:
    """The human held-out clips again in the AI clips' form (every AI clip of the corpus is
    a ComfyUI preview): how far the form alone moves a human clip toward "AI"."""
    from detector_core.video import VideoLimits, sample_frames

    limits = VideoLimits(frames_scored=frames)
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    rows = []
    skipped = []
    for item in tqdm([s for s in items if s.clip.target == 0], unit="clip", desc="previews"):
        if len(item.probabilities) < 2:  # one frame makes a still WebP, not a clip
            skipped.append(item.clip.file.rsplit("/", 1)[-1])
            continue
        key = f"preview:{detector.loaded.sha256[:16]}:{frames}:{item.clip.sha256}"
        if key not in cache:
            sample = sample_frames(corpus / item.clip.file, limits)
            verdict = detector.score_video(
                as_preview([f.image for f in sample.frames]), limits=limits
            )
            cache[key] = {"p": [f.ai_probability for f in verdict.frames]}
            cache_path.write_text(json.dumps(cache))
        before = UNFITTED.probability(item.probabilities)
        after = UNFITTED.probability(cache[key]["p"])
        rows.append(
            {
                "file": item.clip.file.rsplit("/", 1)[-1],
                "as_is": round(before, 4),
                "as_preview": round(after, 4),
                "band_as_preview": cutoffs.band(after).value,
            }
        )
    shift = [UNFITTED.logit([r["as_preview"]]) - UNFITTED.logit([r["as_is"]]) for r in rows]
    # The held-out AI clips against these previews: a ranking with the form held equal.
    ai = [UNFITTED.probability(s.probabilities) for s in items if s.clip.target == 1]
    human = [r["as_preview"] for r in rows]
    targets = np.array([1] * len(ai) + [0] * len(human))
    auc = roc_auc(targets, np.array(ai + human)) if ai and human else None
    return {
        "clips": len(rows),
        "skipped_single_frame": skipped,
        "clip_auc_ai_against_previews": auc,
        "mean_logit_shift": float(np.mean(shift)) if shift else None,
        "higher_as_preview": sum(d > 0 for d in shift),
        "as_preview_by_band": {b: sum(r["band_as_preview"] == b for r in rows) for b in BAND_ORDER},
        "per_clip": rows,
    }


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
    for name, mask in (("ai", ai), ("human", human)):
        bands = [cutoffs.band(float(p)).value for p in clip_p[mask]]
        out[f"{name}_clips_by_band"] = {b: bands.count(b) for b in BAND_ORDER}
    if ai.any():
        n = out["ai_clips_by_band"]["likely_ai"]
        out["ai_clips_at_likely_ai"] = {"count": n, "of": int(ai.sum()), "share": n / ai.sum()}
    if human.any():
        n = out["human_clips_by_band"]["likely_ai"]
        out["human_clips_at_likely_ai"] = {"count": n, "of": int(human.sum())}
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
    print(markdown(report), end="")
    return 0


def run(args: argparse.Namespace, default_out, read_reserved, read_excluded) -> dict:
    from collections import Counter

    from detector_core.clip_rule import save_rule
    from detector_core.detector import Detector
    from detector_core.weights import default_weights_path

    corpus = (args.corpus or default_out()).expanduser()
    clips = read_manifest(corpus, read_reserved(args.reserved), read_excluded(args.exclude))
    weights = args.weights or default_weights_path()
    # Pixels only: the ComfyUI clips' metadata would otherwise decide them.
    detector = Detector(weights, provenance=False)
    loaded = detector.loaded
    scored = score_corpus(clips, corpus, detector, args.frames, args.out / CACHE_NAME)
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
        # Kept, and the rule file says that it was checked rather than never looked at.
        rule = ClipRule(fitted_on=f"{fitted_on}; fitted calibrations did no better")
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
        "human_val_as_previews": preview_check(
            val, corpus, detector, args.frames, args.out / CACHE_NAME, cutoffs
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "report.md").write_text(markdown(report))
    write_figures(val, rules, cutoffs, args.out)
    if args.rule_out is not None:
        save_rule(rule, weights, loaded.sha256, args.rule_out)
    return report


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
