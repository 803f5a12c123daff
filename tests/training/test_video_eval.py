"""`humanmade video-eval`: the clip rule is chosen and fitted on train sources only and
checked on held-out ones; a tiny corpus scored end to end with the tiny test network."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from video_support import make_clip, moving_frames

from detector_core.clip_rule import UNFITTED, load_rule
from detector_core.errors import HumanmadeError
from detector_core.training import video_eval
from detector_core.training.video_corpus import VIDEO_MANIFEST_COLUMNS
from detector_core.training.video_eval import Clip, Scored
from detector_core.verdict import BandCutoffs


def _scored(label: str, group: str, probs: list[float], split: str = "train") -> Scored:
    clip = Clip(
        file=f"clips/{split}/{label}/{group}-{len(probs)}-{probs[0]}.mp4",
        split=split,
        label=label,
        source_group=group,
        generator="G" if label == "ai" else "",
        content="photo",
        kind="video",
        sha256="0" * 64,
        origin=f"pkg@1:{group}",
    )
    return Scored(clip, probs, [float(i) for i in range(len(probs))])


def _train_set(seed: int = 0) -> list[Scored]:
    rng = np.random.default_rng(seed)
    items = []
    for g in range(4):
        for _ in range(5):
            ai = rng.uniform(0.55, 0.95, 6).tolist()
            human = rng.uniform(0.05, 0.6, 6).tolist()
            items.append(_scored("ai", f"ai{g}", ai))
            items.append(_scored("human", f"human{g}", human))
    return items


def test_the_fitted_rule_separates_and_is_balanced_between_classes():
    train = _train_set()
    rule = video_eval.fit_rule(train, "mean", fitted_on="x")
    probs = np.array([rule.probability(s.probabilities) for s in train])
    targets = np.array([s.clip.target for s in train])
    assert probs[targets == 1].min() > probs[targets == 0].max() - 0.2
    assert rule.temperature > 0 and rule.fitted_on == "x"
    # Four times as many AI clips must not move the rule toward "AI": classes weigh equally.
    skewed = train + [s for s in train if s.clip.target == 1] * 3
    again = video_eval.fit_rule(skewed, "mean")
    assert again.bias == pytest.approx(rule.bias, abs=1e-3)
    assert again.temperature == pytest.approx(rule.temperature, rel=1e-3)


def test_the_choice_is_made_leaving_each_train_source_out():
    choice = video_eval.loso_choice(_train_set())
    assert set(choice) == {"mean, fitted", "median, fitted", "top3, fitted", "mean, unfitted"}
    for row in choice.values():
        assert 0.0 < row["log_loss"] < 5.0 and 0.5 < row["auc"] <= 1.0


def test_a_preview_is_a_centre_square_of_350_px_never_upscaled():
    from PIL import Image

    big = [Image.new("RGB", (1280, 720), (i * 40, 0, 0)) for i in range(3)]
    with Image.open(io.BytesIO(video_eval.as_preview(big))) as im:
        assert (im.format, im.size, im.n_frames) == ("WEBP", (350, 350), 3)
    small = [Image.new("RGB", (200, 120), (0, i * 40, 0)) for i in range(2)]
    with Image.open(io.BytesIO(video_eval.as_preview(small))) as im:
        assert im.size == (120, 120)


def test_held_out_figures_count_clips_and_frames():
    cutoffs = BandCutoffs(human=0.2, ai=0.9)
    items = [
        _scored("ai", "a", [0.99, 0.98], "val"),
        _scored("ai", "a", [0.6, 0.7], "val"),
        _scored("human", "h", [0.95, 0.96], "val"),  # a false alarm, counted
        _scored("human", "h", [0.1, 0.05, 0.95], "val"),
    ]
    report = video_eval.held_out_report(items, UNFITTED, cutoffs)
    assert report["clips"] == {"ai": 2, "human": 2}
    assert report["frames"] == {"ai": 4, "human": 5}
    assert report["ai_clips_at_likely_ai"] == {"count": 1, "of": 2, "share": 0.5}
    assert report["human_clips_at_likely_ai"] == {"count": 1, "of": 2}
    assert report["ai_clips_by_band"] == {"likely_human": 0, "uncertain": 1, "likely_ai": 1}
    assert report["human_clips_by_band"] == {"likely_human": 0, "uncertain": 1, "likely_ai": 1}
    assert report["human_frames_at_likely_ai"] == {"count": 3, "of": 5}
    assert report["clip_auc"] == pytest.approx(0.75)  # one AI clip below one human clip
    assert [c["band"] for c in report["per_clip"]][:1] == ["likely_ai"]


def _corpus(tmp_path):
    """Two AI and two human clips per split, each split's sources its own."""
    root = tmp_path / "vc"
    rows = []
    n = 0
    for split in ("train", "val"):
        for label in ("ai", "human"):
            for k in range(2):
                n += 1
                rel = f"clips/{split}/{label}/c{n}"
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                frames = list(moving_frames(4, 96, 96, seed=n))  # every clip its own
                if label == "ai":
                    path = path.with_suffix(".webp")
                    images = [Image.fromarray(f) for f in frames]
                    images[0].save(path, save_all=True, append_images=images[1:], duration=250)
                else:
                    path = make_clip(path.with_suffix(".mp4"), 1, 4, 96, 96, frames=frames)
                data = path.read_bytes()
                rows.append(
                    {
                        "file": str(path.relative_to(root)),
                        "split": split,
                        "label": label,
                        "source_group": f"{split}:{label}:{k}",
                        "generator": "G" if label == "ai" else "",
                        "content": "photo",
                        "kind": "video",
                        "container": "mov",
                        "bytes": str(len(data)),
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "license": "test",
                        "origin": f"made-here@1:c{n}",
                        "evidence": "made for this test",
                    }
                )
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=VIDEO_MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_the_command_scores_fits_reports_and_writes_the_rule(tiny_weights, tmp_path, capsys):
    corpus = _corpus(tmp_path)
    (tmp_path / "reserved.txt").write_text("nothing-reserved\n")
    (tmp_path / "exclude.txt").write_text("")
    out, rule_file = tmp_path / "report", tmp_path / "rule.json"
    argv = [
        *("--corpus", str(corpus), "--weights", str(tiny_weights), "--frames", "3"),
        *("--out", str(out), "--rule-out", str(rule_file)),
        *("--reserved", str(tmp_path / "reserved.txt")),
        *("--exclude", str(tmp_path / "exclude.txt")),
    ]
    assert video_eval.main(argv) == 0
    assert "Held-out sources (val)" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["corpus"]["clips"] == 8 and report["unscored"] == []
    assert report["frames_per_clip"] == 3
    for row in report["val"].values():
        assert row["clips"] == {"ai": 2, "human": 2}
        assert 0.0 <= row["clip_auc"] <= 1.0
    assert (out / "roc.png").stat().st_size > 0 and (out / "clips.png").stat().st_size > 0
    check = report["human_val_as_previews"]
    assert check["clips"] == 2 and sum(check["as_preview_by_band"].values()) == 2
    cache = json.loads((out / video_eval.CACHE_NAME).read_text())
    assert len(cache) == 8 + 2 and all(len(v["p"]) <= 3 for v in cache.values())
    saved = json.loads(rule_file.read_text())
    assert saved["weights_sha256"] == hashlib.sha256(tiny_weights.read_bytes()).hexdigest()
    assert saved["statistic"] == report["rule"]["statistic"]

    # A second run reads every clip from the cache instead of scoring again.
    def refuse(*args, **kwargs):
        raise AssertionError("scored again")

    from detector_core.detector import Detector

    original = Detector.score_video
    Detector.score_video = refuse
    try:
        assert video_eval.main(argv) == 0
    finally:
        Detector.score_video = original


def test_a_reserved_source_in_the_corpus_stops_the_evaluation(tmp_path):
    corpus = _corpus(tmp_path)
    (tmp_path / "reserved.txt").write_text("made-here\n")
    with pytest.raises(HumanmadeError, match="reserved or held-out"):
        video_eval.read_manifest(corpus, {"made-here"}, set())
    with pytest.raises(HumanmadeError, match="build-video"):
        video_eval.read_manifest(tmp_path / "nowhere", set(), set())
    assert load_rule(tmp_path / "x.safetensors", "0" * 64) is UNFITTED
