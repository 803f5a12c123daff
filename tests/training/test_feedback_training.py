"""Feedback loop, training side: review exports, mixed weighting, fine-tuning, recalibration."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EXPORT_COLUMNS, MANIFEST_COLUMNS, make_image
from PIL import Image
from safetensors.torch import load_file

from detector_core.calibration import Calibration
from detector_core.detector import Detector
from detector_core.errors import WeightsError
from detector_core.experts.trace import LocalTraceNet, ModelConfig
from detector_core.training import calibrate, train
from detector_core.training.data import ManifestRow, read_manifest
from detector_core.training.feedback import (
    ExportError,
    MixConfig,
    load_export_pixels,
    mixed_weights,
    read_export,
    read_exports,
    summarise_training_data,
)
from detector_core.verdict import Band, BandCutoffs
from detector_core.weights import file_sha256, load_weights, save_weights

SIZE = 72


def synthetic(label: str, seed: int, checker: bool | None = None) -> np.ndarray:
    """Smooth gradient plus mild noise; 'ai' adds a 2-pixel periodic checkerboard."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    slopes = rng.uniform(-1.5, 1.5, size=(3, 2))
    base = np.stack([90 + a * x + b * y for a, b in slopes], axis=-1)
    img = base + rng.normal(0, 2, base.shape)
    if checker if checker is not None else label == "ai":
        img += 8.0 * (((x + y) % 2) * 2 - 1)[..., None]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _write(folder: Path, relative: str, pixels: np.ndarray) -> str:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_manifest(folder: Path, columns: list[str], rows: list[dict]) -> None:
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def make_shared(folder: Path, per_class: dict[str, int]) -> Path:
    """A shared-format dataset: two sources per class in train, one in val."""
    rows = []
    for split, n in per_class.items():
        for label in ("human", "ai"):
            for i in range(n):
                rel = f"{split}/{label}/{i}.png"
                sha = _write(folder, rel, synthetic(label, len(rows)))
                group = f"{label}-src{i % 2}" if split == "train" else f"{label}-val"
                rows.append(
                    {"file": rel, "split": split, "label": label, "source_group": group}
                    | {"sha256_original": sha, "width": SIZE, "height": SIZE, "format": "PNG"}
                )
    _write_manifest(folder, MANIFEST_COLUMNS, rows)
    return folder


def make_export(folder: Path, spec: list[tuple[str, str, str]], seed: int = 0) -> Path:
    """An export in the humanmade_export format; spec is (split, label, label_origin) per row."""
    rows = []
    for i, (split, label, origin) in enumerate(spec):
        rel = f"images/{split}/{label}/review-{seed}-{i}.png"
        sha = _write(folder, rel, synthetic(label, 50_000 + seed * 1000 + i))
        rows.append(
            {"file": rel, "split": split, "label": label, "source_group": "review:site"}
            | {"label_origin": origin, "model_version": "test-0", "sha256": sha}
            | {"sha256_original": sha, "width": SIZE, "height": SIZE, "format": "PNG"}
        )
    _write_manifest(folder, EXPORT_COLUMNS, rows)
    return folder


def spec(split: str, origin: str, per_class: int) -> list[tuple[str, str, str]]:
    return [(split, label, origin) for label in ("human", "ai") for _ in range(per_class)]


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    return make_shared(tmp_path_factory.mktemp("shared"), {"train": 6, "val": 4})


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return make_export(
        tmp_path_factory.mktemp("export"),
        spec("train", "reviewer", 5)
        + spec("train", "confident_score", 4)
        + spec("val", "reviewer", 3),
    )


# --------------------------------------------------------------------------- reading exports


def test_read_export_rows_and_filters(export):
    rows = read_export(export)
    assert len(rows) == 24
    assert {r.label_origin for r in rows} == {"reviewer", "confident_score"}
    assert all(r.model_version == "test-0" for r in rows)
    reviewer_train = read_export(export, split="train", origins=["reviewer"])
    assert len(reviewer_train) == 10
    assert {(r.split, r.label_origin) for r in reviewer_train} == {("train", "reviewer")}
    assert len(read_export(export, split="val")) == 6
    arrays = load_export_pixels(export, reviewer_train[:2], progress=False)
    assert arrays[0].shape == (SIZE, SIZE, 3)


def test_read_manifest_fills_the_new_fields(tmp_path, export):
    shared_rows = read_manifest(make_shared(tmp_path, {"train": 1}))
    assert {(r.label_origin, r.model_version) for r in shared_rows} == {("dataset", "")}
    # The export's manifest is a training manifest too.
    from_export = read_manifest(export, "val")
    assert {(r.label_origin, r.model_version) for r in from_export} == {("reviewer", "test-0")}


def test_read_export_errors_are_clear(tmp_path):
    with pytest.raises(ExportError, match="no manifest.csv"):
        read_export(tmp_path)
    with pytest.raises(ExportError, match="not a folder"):
        read_export(tmp_path / "nowhere")

    folder = make_export(tmp_path / "bad", spec("train", "reviewer", 1))
    text = (folder / "manifest.csv").read_text()
    (folder / "manifest.csv").write_text(text.replace(",reviewer,", ",robot,", 1))
    with pytest.raises(ExportError, match=r"line 2: label_origin 'robot' is not one of"):
        read_export(folder)

    (folder / "manifest.csv").write_text(text)
    assert len(read_export(folder)) == 2
    missing = folder / read_export(folder)[1].file
    missing.unlink()
    with pytest.raises(ExportError, match=r"line 3: .*review-0-1.png is listed but .* not exist"):
        read_export(folder)

    drop = text.splitlines()[0].split(",").index("label_origin")
    stripped = [
        ",".join(c for j, c in enumerate(line.split(",")) if j != drop)
        for line in text.splitlines()
    ]
    (folder / "manifest.csv").write_text("\n".join(stripped) + "\n")
    with pytest.raises(ExportError, match="lacks the column.*label_origin"):
        read_export(folder)

    (folder / "manifest.csv").write_text(text.replace("images/train/ai/", "../../etc/", 1))
    with pytest.raises(ExportError, match="not a path inside the export"):
        read_export(folder)
    with pytest.raises(ExportError, match="unknown label origin"):
        read_export(folder, origins=["dataset"])
    assert issubclass(ExportError, ValueError)


def test_an_image_in_any_val_slice_is_never_a_train_row(tmp_path):
    a = make_export(tmp_path / "a", spec("train", "reviewer", 2), seed=1)
    # Export b holds a's first train image in its val slice (another val percentage).
    b = make_export(tmp_path / "b", spec("val", "reviewer", 1), seed=2)
    first = read_export(a)[0]
    val_file = read_export(b)[0].file
    (b / val_file).write_bytes((a / first.file).read_bytes())
    rows = list(csv.DictReader((b / "manifest.csv").open()))
    rows[0]["sha256"] = rows[0]["sha256_original"] = hashlib.sha256(
        (a / first.file).read_bytes()
    ).hexdigest()
    _write_manifest(b, EXPORT_COLUMNS, rows)
    splits = read_exports([a, b])
    assert splits.dropped == 1
    assert first not in splits.train[0]
    assert len(splits.train[0]) == 3 and splits.train[1] == []
    assert len(splits.val[1]) == 2


# --------------------------------------------------------------------------- weighting


def _rows(n: int, label: str, origin: str, group: str) -> list[ManifestRow]:
    return [
        ManifestRow(f"{group}-{label}-{i}.png", "train", label, group, "", "", label_origin=origin)
        for i in range(n)
    ]


def _share(mix, pred) -> float:
    return sum(p for r, p in zip(mix.rows, mix.sampling, strict=True) if pred(r))


def test_confident_rows_are_capped_and_down_weighted():
    shared_rows = _rows(40, "human", "dataset", "h1") + _rows(10, "human", "dataset", "h2")
    shared_rows += _rows(30, "ai", "dataset", "a1")
    export_rows = (
        _rows(5, "human", "reviewer", "site")
        + _rows(3, "ai", "reviewer", "site")
        # The model labelled many more images itself than people reviewed.
        + _rows(200, "human", "confident_score", "site")
        + _rows(150, "ai", "confident_score", "site")
    )
    mix = mixed_weights(shared_rows, [export_rows], MixConfig(0.4, 0.30, 0.5))
    assert sum(mix.sampling) == pytest.approx(1.0)
    assert _share(mix, lambda r: r.label == "ai") == pytest.approx(0.5)
    confident = _share(mix, lambda r: r.label_origin == "confident_score")
    assert confident == pytest.approx(0.30)
    # What the cap takes from them goes to the reviewed rows, not back to the shared data.
    assert _share(mix, lambda r: r.label_origin == "reviewer") == pytest.approx(0.10)
    assert _share(mix, lambda r: r.label_origin == "dataset") == pytest.approx(0.60)
    assert mix.share_by_origin == {"dataset": 0.6, "reviewer": 0.1, "confident_score": 0.3}
    # The shared data keeps its own balancing: sources by sqrt(size) within a class.
    h1 = _share(mix, lambda r: r.source_group == "h1")
    h2 = _share(mix, lambda r: r.source_group == "h2")
    assert h1 / h2 == pytest.approx(2.0)
    assert {(r.label_origin, w) for r, w in zip(mix.rows, mix.loss, strict=True)} == {
        ("dataset", 1.0),
        ("reviewer", 1.0),
        ("confident_score", 0.5),
    }

    # Few confident rows take only their count-proportional part.
    few = mixed_weights(
        shared_rows,
        [_rows(9, "human", "reviewer", "s") + _rows(1, "human", "confident_score", "s")],
    )
    assert _share(few, lambda r: r.label_origin == "confident_score") == pytest.approx(0.02)


def test_each_export_is_its_own_source_group_and_draws_follow_the_weights():
    small, large = _rows(4, "ai", "reviewer", "x"), _rows(16, "ai", "reviewer", "y")
    mix = mixed_weights(
        _rows(8, "human", "dataset", "h") + _rows(8, "ai", "dataset", "a"), [small, large]
    )
    x, y = (
        _share(mix, lambda r: r.source_group == "x"),
        _share(mix, lambda r: r.source_group == "y"),
    )
    assert y / x == pytest.approx(2.0)  # sqrt(16) / sqrt(4)
    assert x + y == pytest.approx(0.5 * 0.4)
    draws = torch.multinomial(
        torch.tensor(mix.sampling),
        20_000,
        replacement=True,
        generator=torch.Generator().manual_seed(0),
    )
    export_draws = sum(mix.rows[i].label_origin == "reviewer" for i in draws.tolist())
    assert export_draws / 20_000 == pytest.approx(0.2, abs=0.02)


def test_a_class_taught_only_by_the_model_itself_is_refused():
    only_confident_ai = _rows(5, "human", "reviewer", "s") + _rows(5, "ai", "confident_score", "s")
    with pytest.raises(ValueError, match="only ai images are confident_score rows"):
        mixed_weights([], [only_confident_ai])
    with pytest.raises(ValueError, match="no human images"):
        mixed_weights([], [_rows(3, "ai", "reviewer", "s")])
    with pytest.raises(ValueError, match="confident cap"):
        MixConfig(confident_cap=1.5)


def test_summarise_training_data():
    rows = _rows(2, "ai", "dataset", "a") + _rows(3, "human", "reviewer", "site")
    assert summarise_training_data(rows) == {
        "by_source": {"ai/a": 2, "human/site": 3},
        "by_label_origin": {"dataset": 2, "reviewer": 3, "confident_score": 0},
    }


def test_loss_weights_reach_the_loss():
    """A zero loss weight leaves the parameters untouched; weight one trains them."""
    arrays = [synthetic(label, i) for i, label in enumerate(["human", "ai"] * 4)]
    targets = [0, 1] * 4
    cfg = train.TrainConfig(
        epochs=1,
        samples_per_epoch=8,
        batch_size=4,
        lr=1e-2,
        weight_decay=0.0,
        tile_size=64,
        workers=0,
        threads=1,
        model=ModelConfig(widths=(4, 8, 8), strides=(2, 2)),
        augment=train.AugmentConfig(crop=64),
    )

    def params_after(weight: float) -> list[torch.Tensor]:
        torch.manual_seed(0)
        start = LocalTraceNet(cfg.model)
        before = [p.detach().clone() for p in start.parameters()]
        model = train.train_model(
            arrays, targets, [1.0] * 8, cfg, loss_weights=[weight] * 8, model=start
        )
        return [(a - b).abs().max().item() for a, b in zip(model.parameters(), before, strict=True)]

    assert max(params_after(0.0)) == 0.0
    assert max(params_after(1.0)) > 1e-4
    item = train.WeightedAugmentedImages(arrays, targets, [0.5] * 8, cfg.augment)[1]
    assert item[0].shape == (3, 64, 64) and item[1].item() == 1.0 and item[2].item() == 0.5


# --------------------------------------------------------------------------- train --base --add


def test_fine_tune_defaults_follow_the_base(tiny_weights):
    parser = train.build_parser()
    tuned = train._config(
        parser.parse_args(["--base", str(tiny_weights)]), load_weights(tiny_weights)
    )
    assert (tuned.epochs, tuned.lr, tuned.tile_size, tuned.augment.crop) == (3, 2e-4, 64, 64)
    assert tuned.model == ModelConfig(widths=(4, 8, 8), strides=(2, 2))
    scratch = train._config(parser.parse_args([]), None)
    assert (scratch.epochs, scratch.lr, scratch.tile_size, scratch.augment.crop) == (
        12,
        1e-3,
        256,
        128,
    )
    assert scratch.model.backbone == "efficientnet-lite0"
    with pytest.raises(ValueError, match="larger than the model's tile size"):
        train._config(parser.parse_args(["--crop", "96"]), load_weights(tiny_weights))


def _quick(*extra: str) -> list[str]:
    return [
        "--epochs",
        "1",
        "--samples-per-epoch",
        "64",
        "--batch-size",
        "16",
        "--workers",
        "0",
        "--threads",
        "1",
        *extra,
    ]


def test_train_fine_tunes_on_shared_data_and_export(
    tiny_weights, shared, export, tmp_path, monkeypatch, capsys
):
    seen: dict = {}
    real = train.train_model

    def spy(arrays, targets, weights, cfg, **kw):
        seen.update(arrays=arrays, weights=weights, cfg=cfg, **kw)
        return real(arrays, targets, weights, cfg, **kw)

    monkeypatch.setattr(train, "train_model", spy)
    out = tmp_path / "ft.safetensors"
    code = train.main(
        _quick(
            "--base",
            str(tiny_weights),
            "--add",
            str(export),
            "--data",
            str(shared),
            "--out",
            str(out),
        )
    )
    assert code == 0
    loaded = load_weights(out, expected_sha256=file_sha256(out))
    meta = loaded.metadata
    assert loaded.version == "test-0-ft"
    assert loaded.tile_size == 64
    assert meta["parent_version"] == "test-0"
    assert meta["parent_sha256"] == file_sha256(tiny_weights)
    assert meta["calibrated_on"] == "val"
    assert loaded.cutoffs == BandCutoffs()
    assert json.loads(meta["cutoffs"]) == {"human": 0.2, "ai": 0.8}
    counts = json.loads(meta["train_counts"])
    # 12 shared train images; the export's 10 reviewer and 8 confident train rows; none of
    # its 6 val rows.
    assert counts["by_label_origin"] == {"dataset": 12, "reviewer": 10, "confident_score": 8}
    assert counts["by_source"]["human/review:site"] == 9
    feedback = json.loads(meta["feedback"])
    assert feedback["exports"] == [{"name": export.name, "train_rows": 18, "val_rows_held_out": 6}]
    assert feedback["confident_weight"] == 0.5

    # The val slice's pixels never reached training; confident rows carried weight 0.5.
    val_pixels = load_export_pixels(export, read_export(export, split="val"), progress=False)
    assert len(seen["arrays"]) == 30
    assert not any(np.array_equal(v, a) for v in val_pixels for a in seen["arrays"])
    assert sorted(set(seen["loss_weights"])) == [0.5, 1.0]
    assert seen["loss_weights"].count(0.5) == 8
    assert seen["cfg"].epochs == 1 and seen["cfg"].augment.crop == 64

    # It really was fine-tuned from the base: same architecture, changed tensors.
    base, tuned = load_file(str(tiny_weights)), load_file(str(out))
    assert base.keys() == tuned.keys()
    assert any(not torch.equal(base[k], tuned[k]) for k in base if k.endswith("weight"))
    assert "held out for the release gate (never trained on)" in capsys.readouterr().out


def test_train_without_shared_data_calibrates_on_reviewer_rows(
    tiny_weights, export, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("HUMANMADE_DATASET", str(tmp_path / "no-shared"))
    out = tmp_path / "site.safetensors"
    code = train.main(
        _quick(
            "--base",
            str(tiny_weights),
            "--add",
            str(export),
            "--out",
            str(out),
            "--version",
            "site-1",
        )
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "no shared dataset" in text and "in-sample" in text
    loaded = load_weights(out, expected_sha256=file_sha256(out))
    assert loaded.version == "site-1"
    assert "reviewer-labelled rows of the exports' train split" in loaded.metadata["calibrated_on"]
    assert "in-sample" in loaded.metadata["calibrated_on"]
    assert "val_report" not in loaded.metadata
    counts = json.loads(loaded.metadata["train_counts"])["by_label_origin"]
    assert counts == {"dataset": 0, "reviewer": 10, "confident_score": 8}


def test_train_usage_errors_exit_2(tiny_weights, export, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HUMANMADE_DATASET", str(tmp_path / "no-shared"))
    assert train.main(_quick("--base", str(tiny_weights), "--out", str(tmp_path / "x"))) == 2
    assert "without one, training needs --add EXPORT_DIR" in capsys.readouterr().err
    assert train.main(_quick("--data", str(tmp_path / "missing"), "--add", str(export))) == 2
    assert "no manifest.csv in" in capsys.readouterr().err
    assert train.main(_quick("--base", str(tiny_weights), "--add", str(tmp_path))) == 2
    assert "no manifest.csv" in capsys.readouterr().err
    assert (
        train.main(_quick("--base", str(tmp_path / "nope.safetensors"), "--add", str(export))) == 2
    )
    assert "No weights at" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- calibrate


def test_choose_cutoffs():
    humans = np.r_[np.full(48, 0.1), 0.85, 0.934]
    cut, met = calibrate.choose_cutoffs(humans, np.full(50, 0.9), fpr_target=0.02)
    # One human of 50 may reach likely_ai; the second-highest (0.85) must not.
    assert met and cut == BandCutoffs(human=0.2, ai=0.851)
    assert calibrate.choose_cutoffs(humans, np.full(50, 0.9), fpr_target=0.04)[0].ai == 0.8
    assert calibrate.choose_cutoffs(np.full(50, 0.1), np.full(50, 0.9))[0] == BandCutoffs()
    # 6 of 40 AI images below 0.20: the human cut-off drops so that at most 2 (5%) stay below.
    ais = np.r_[0.02, 0.03, 0.05, 0.081, 0.12, 0.15, np.full(34, 0.9)]
    cut, _ = calibrate.choose_cutoffs(np.full(40, 0.1), ais, fnr_target=0.05)
    assert cut.human == 0.05 and int((ais < cut.human).sum()) == 2
    cut, met = calibrate.choose_cutoffs(np.r_[np.full(20, 0.1), 1.0, 1.0], ais)
    assert not met and cut.ai == 1.0


def _checker_logits(loaded, arrays, progress=True):
    """A stand-in detector: the energy of the 2-pixel checkerboard, as a logit."""
    energy = [np.abs(np.diff(a.astype(float), n=2, axis=1)).mean() for a in arrays]
    return (np.array(energy) - 15.0) / 3.0


def test_calibrate_refits_and_moves_the_ai_cutoff(tiny_weights, tmp_path, monkeypatch, capsys):
    folder = make_export(
        tmp_path / "exp",
        spec("train", "reviewer", 12)
        + spec("train", "confident_score", 5)
        + spec("val", "reviewer", 2),
    )
    # A human image (pixel art, say) that carries the pattern: it must not end in likely_ai.
    rows = list(csv.DictReader((folder / "manifest.csv").open()))
    Image.fromarray(synthetic("human", 7, checker=True)).save(folder / rows[0]["file"])
    monkeypatch.setattr(calibrate, "release_logits", _checker_logits)
    out = tmp_path / "cal.safetensors"
    code = calibrate.main(
        [
            "--weights",
            str(tiny_weights),
            "--add",
            str(folder),
            "--out",
            str(out),
            "--min-per-class",
            "10",
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "IN-SAMPLE" in text and "HELD OUT" in text and "human FPR at likely_ai" in text
    loaded = load_weights(out, expected_sha256=file_sha256(out))
    assert loaded.version == "test-0-cal"
    assert loaded.metadata["parent_sha256"] == file_sha256(tiny_weights)
    assert loaded.calibration != Calibration(1.0, 0.0)
    assert loaded.cutoffs.ai > 0.8 and loaded.cutoffs.human <= 0.2
    assert "24 reviewer-labelled images (12 human, 12 AI)" in loaded.metadata["calibrated_on"]
    # Fitted on the reviewer train rows only: their human FPR at likely_ai is within target.
    fit_rows = read_export(folder, split="train", origins=["reviewer"])
    probs = loaded.calibration.probability(
        _checker_logits(None, load_export_pixels(folder, fit_rows, progress=False))
    )
    human = np.array([r.label == "human" for r in fit_rows])
    assert np.mean(probs[human] >= loaded.cutoffs.ai) <= 0.02
    report = json.loads(loaded.metadata["calibration_report"])
    assert report["in_sample"]["after"]["n_human"] == 12  # not the 5 confident, not val
    assert report["held_out"]["after"]["n_human"] == 2
    assert report["in_sample"]["after"]["log_loss"] < report["in_sample"]["before"]["log_loss"]
    # Same tensors as the parent.
    base, new = load_file(str(tiny_weights)), load_file(str(out))
    assert all(torch.equal(base[k], new[k]) for k in base)


def test_calibrate_with_the_real_model(tiny_weights, tmp_path, capsys):
    folder = make_export(tmp_path / "exp", spec("train", "reviewer", 5))
    out = tmp_path / "cal.safetensors"
    args = [
        "--weights",
        str(tiny_weights),
        "--add",
        str(folder),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert calibrate.main([*args, "--min-per-class", "5", "--version", "v2"]) == 0
    loaded = load_weights(out, expected_sha256=file_sha256(out))
    assert loaded.version == "v2" and loaded.cutoffs.ai >= 0.8
    assert "no held-out figures" in capsys.readouterr().out


def test_calibrate_refuses_too_few_reviewer_images(tiny_weights, tmp_path, capsys):
    # Plenty of confident_score rows and val rows: neither counts.
    folder = make_export(
        tmp_path / "exp",
        spec("train", "reviewer", 3)
        + spec("train", "confident_score", 8)
        + spec("val", "reviewer", 8),
    )
    out = tmp_path / "cal.safetensors"
    args = ["--weights", str(tiny_weights), "--add", str(folder), "--out", str(out)]
    assert calibrate.main([*args, "--min-per-class", "5"]) == 2
    err = capsys.readouterr().err
    assert "3 human and 3 AI reviewer-labelled images" in err and "at least 5 of each" in err
    assert not out.exists()
    assert (
        calibrate.main(
            ["--weights", str(tiny_weights), "--add", str(folder), "--out", str(tiny_weights)]
        )
        == 2
    )
    assert "is the input weights" in capsys.readouterr().err


# --------------------------------------------------------------------------- weights and Detector


def _tiny_with_cutoffs(folder: Path, cutoffs: BandCutoffs | None) -> tuple[Path, str]:
    torch.manual_seed(0)
    model = LocalTraceNet(ModelConfig(widths=(4, 8, 8), strides=(2, 2))).eval()
    path = folder / "w.safetensors"
    return path, save_weights(path, model, Calibration(), "cut-1", 64, cutoffs=cutoffs)


def test_detector_uses_the_weights_cutoffs_unless_given(tmp_path):
    always_ai = BandCutoffs(human=0.0, ai=1e-9)
    path, sha = _tiny_with_cutoffs(tmp_path, always_ai)
    assert load_weights(path, sha).cutoffs == always_ai
    image = make_image(96, 96, seed=3)

    from_weights = Detector(path, expected_sha256=sha, stability_check=False, provenance=False)
    assert from_weights.cutoffs == always_ai
    assert from_weights.score(image).band is Band.LIKELY_AI

    never_ai = BandCutoffs(human=0.0, ai=1.0)
    explicit = Detector(
        path, expected_sha256=sha, cutoffs=never_ai, stability_check=False, provenance=False
    )
    assert explicit.cutoffs == never_ai
    assert explicit.score(image).band is Band.UNCERTAIN

    # Loading stays lazy: a missing file fails when cut-offs are first needed, not before.
    lazy = Detector(tmp_path / "missing.safetensors")
    with pytest.raises(WeightsError):
        _ = lazy.cutoffs
    assert Detector(tmp_path / "missing.safetensors", cutoffs=never_ai).cutoffs == never_ai


def test_weights_without_or_with_bad_cutoffs(tmp_path):
    path, sha = _tiny_with_cutoffs(tmp_path, None)
    assert load_weights(path, sha).cutoffs == BandCutoffs()
    assert "cutoffs" not in load_weights(path, sha).metadata
    torch.manual_seed(0)
    model = LocalTraceNet(ModelConfig(widths=(4, 8, 8), strides=(2, 2)))
    bad = tmp_path / "bad.safetensors"
    sha = save_weights(
        bad, model, Calibration(), "x", 64, extra={"cutoffs": '{"human": 0.9, "ai": 0.1}'}
    )
    with pytest.raises(WeightsError, match="inconsistent contents"):
        load_weights(bad, sha)


# --------------------------------------------------------------------------- bad input


def test_manifests_saved_with_a_bom_are_read(tmp_path):
    """Spreadsheets save CSV with a byte-order mark; it used to hide the `file` column."""
    folder = make_export(tmp_path / "exp", spec("train", "reviewer", 1))
    shared = make_shared(tmp_path / "shared", {"train": 1})
    for manifest in (folder / "manifest.csv", shared / "manifest.csv"):
        manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    assert [r.label for r in read_export(folder)] == ["human", "ai"]
    assert [r.file for r in read_manifest(shared)] == ["train/human/0.png", "train/ai/0.png"]


def test_train_refuses_to_write_over_its_base_or_into_a_folder(
    tiny_weights, export, tmp_path, capsys
):
    """Checked before any training: --out defaults to the release, which is the usual --base."""
    base = tmp_path / "base" / "w.safetensors"
    base.parent.mkdir()
    base.write_bytes(tiny_weights.read_bytes())
    (base.parent / "README.md").write_text(
        f"- sha256 of `w.safetensors`: `{file_sha256(tiny_weights)}`\n"
    )
    before = base.read_bytes()
    assert train.main(_quick("--base", str(base), "--add", str(export), "--out", str(base))) == 2
    assert "is the input weights" in capsys.readouterr().err
    assert base.read_bytes() == before
    load_weights(base)  # still the released file its card describes

    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert train.main(_quick("--base", str(base), "--add", str(export), "--out", str(folder))) == 2
    assert "is a folder" in capsys.readouterr().err
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    out = not_a_folder / "w.safetensors"
    assert train.main(_quick("--base", str(base), "--add", str(export), "--out", str(out))) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "Traceback" not in err


def test_calibrate_refuses_an_output_folder(tiny_weights, export, tmp_path, capsys):
    args = ["--weights", str(tiny_weights), "--add", str(export), "--out", str(tmp_path)]
    assert calibrate.main([*args, "--min-per-class", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err


def test_a_failed_save_keeps_the_previous_weights(tiny_weights, tmp_path, monkeypatch):
    """save_weights writes beside the target and moves it into place."""
    import detector_core.weights as weights_module

    path = tmp_path / "w.safetensors"
    path.write_bytes(tiny_weights.read_bytes())
    model = load_weights(tiny_weights).model

    def disk_full(state, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(weights_module, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_weights(path, model, Calibration(), "v", 64)
    assert path.read_bytes() == tiny_weights.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_number_options_are_checked_by_argparse(capsys):
    from detector_core.argtypes import fraction, int_at_least

    assert int_at_least(0)("0") == 0 and fraction("1") == 1.0
    for bad in (["--fpr-target", "nan"], ["--fpr-target", "1.5"], ["--min-per-class", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            calibrate.build_parser().parse_args(["--add", "x", "--out", "y", *bad])
        assert exit_info.value.code == 2
    assert "must be" in capsys.readouterr().err


def test_augmentation_probabilities_are_checked_by_argparse(capsys):
    for flag in ("--p-jpeg", "--p-low-jpeg", "--p-colour", "--p-screenshot", "--p-rescale"):
        assert (
            getattr(train.build_parser().parse_args([flag, "0.5"]), flag[2:].replace("-", "_"))
            == 0.5
        )
        for bad in ("1.5", "-0.1", "nan"):
            with pytest.raises(SystemExit) as exit_info:
                train.build_parser().parse_args([flag, bad])
            assert exit_info.value.code == 2
    assert "must be between 0 and 1" in capsys.readouterr().err


def test_saved_weights_are_readable_by_other_users(tiny_weights, tmp_path):
    """safetensors creates 0600 files; web workers often run as another user."""
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = tmp_path / "w.safetensors"
        save_weights(path, load_weights(tiny_weights).model, Calibration(), "v", 64)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
