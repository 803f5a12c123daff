"""The release gate and `humanmade release`, on a tiny synthetic dataset and tiny models.

Human images are smooth gradients with noise; AI images are the same plus a one-pixel
checkerboard (the kind of trace a decoder leaves). A tiny LocalTraceNet trained for a few
steps separates them perfectly; negating its head turns it into the worst possible candidate.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EXPORT_COLUMNS, MANIFEST_COLUMNS
from PIL import Image

from detector_core.calibration import Calibration
from detector_core.cli import main as cli_main
from detector_core.experts.trace import LocalTraceNet, ModelConfig
from detector_core.training.gate import (
    POOLED,
    SHARED_SET,
    GateError,
    GateRow,
    Margins,
    ModelMetrics,
    build_eval_sets,
    decide,
    export_eval_set,
    run_gate,
    shared_eval_set,
)
from detector_core.verdict import BandCutoffs
from detector_core.weights import _CARD_SHA_LINE, file_sha256, load_weights, save_weights

SIZE = 64
TRAIN_COUNTS = {
    "by_source": {"ai/site-uploads": 5, "human/site-uploads": 7, "human/shared": 100},
    "by_label_origin": {"dataset": 100, "reviewer": 8, "confident_score": 4},
}


def synthetic(seed: int, ai: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    a, b, c = rng.uniform(-1.5, 1.5, 3)
    base = 128 + a * x + b * y
    arr = np.stack([base + 20 * c, base, base - 20 * c], -1) + rng.normal(0, 3, (SIZE, SIZE, 3))
    if ai:
        arr += np.where((x + y) % 2 == 0, 10.0, -10.0)[..., None]
    return np.clip(arr, 0, 255).astype(np.uint8)


def write_image(root: Path, rel: str, pixels: np.ndarray) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_row(rel: str, split: str, label: str, sha: str, **extra: str) -> dict[str, str]:
    row = dict.fromkeys(MANIFEST_COLUMNS, "")
    row |= {
        "file": rel,
        "split": split,
        "label": label,
        "source_group": f"{label}/synthetic",
        "content": "photo",
        "width": str(SIZE),
        "height": str(SIZE),
        "format": "PNG",
        "sha256_original": sha,
    }
    return row | extra


def write_manifest(root: Path, rows: list[dict[str, str]], columns: list[str]) -> None:
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """val: 8 human + 8 AI images and one undecodable file; train rows are never read."""
    root = tmp_path_factory.mktemp("data")
    rows = []
    for i in range(16):
        label = "ai" if i % 2 else "human"
        rel = f"images/val/{label}/{i}.png"
        rows.append(manifest_row(rel, "val", label, write_image(root, rel, synthetic(i, i % 2))))
    broken = root / "images/val/human/broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    rows.append(manifest_row("images/val/human/broken.png", "val", "human", "0" * 64))
    rel = "images/train/ai/t.png"
    rows.append(manifest_row(rel, "train", "ai", write_image(root, rel, synthetic(99, True))))
    write_manifest(root, rows, MANIFEST_COLUMNS)
    return root


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """An export: 3 human + 3 AI reviewer-labelled held-out rows count; the rest must not.

    The confident_score rows and train-split rows carry the opposite label to their pixels,
    so any of them slipping into the gate would pull AUC below 1 and change the counts.
    """
    root = tmp_path_factory.mktemp("export")
    rows = []
    plan = [("val", "reviewer", False)] * 6 + [("val", "confident_score", True)] * 6
    plan += [("train", "reviewer", True)] * 6
    for i, (split, origin, flipped) in enumerate(plan):
        is_ai = bool(i % 2)
        label = "human" if is_ai == flipped else "ai"
        rel = f"images/{split}/{label}/{i}.png"
        sha = write_image(root, rel, synthetic(500 + i, is_ai))
        extra = {"label_origin": origin, "model_version": "good-1", "sha256": sha}
        rows.append(manifest_row(rel, split, label, sha, **extra))
    write_manifest(root, rows, EXPORT_COLUMNS)
    return root


def _train_tiny() -> LocalTraceNet:
    torch.manual_seed(0)
    model = LocalTraceNet(ModelConfig(widths=(4, 8, 8), strides=(2, 2)))
    arrays = np.stack([synthetic(1000 + i, bool(i % 2)) for i in range(64)])
    x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255.0
    y = torch.tensor([float(i % 2) for i in range(64)])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(30):
        idx = torch.randint(0, 64, (16,))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """current (good, with a card); candidates: same, negated head, bias raised (two ways)."""
    folder = tmp_path_factory.mktemp("models")
    model = _train_tiny()
    out = {"current": folder / "current.safetensors"}
    sha = save_weights(out["current"], model, Calibration(1.0, 0.0), "good-1", tile_size=SIZE)
    (folder / "README.md").write_text(f"# current\n\n- sha256 of `current.safetensors`: `{sha}`\n")
    cand = folder / "cand"
    extra = {"train_counts": json.dumps(TRAIN_COUNTS), "calibrated_on": "12 reviewed images"}
    out["same"] = cand / "same.safetensors"
    save_weights(out["same"], model, Calibration(1.0, 0.0), "cand-same", SIZE, extra=extra)
    # Every human image reaches likely_ai; the ranking (AUC) is untouched.
    out["biased"] = cand / "biased.safetensors"
    save_weights(out["biased"], model, Calibration(1.0, 4.0), "cand-biased", SIZE)
    # The same shift, with the ai cut-off that goes with it: judged by its own cut-offs.
    out["biased_cut"] = cand / "biased_cut.safetensors"
    save_weights(
        out["biased_cut"],
        model,
        Calibration(1.0, 4.0),
        "cand-biased-cut",
        SIZE,
        cutoffs=BandCutoffs(0.5, 0.95),
    )
    with torch.no_grad():
        model.head.weight.neg_()
        model.head.bias.neg_()
    out["negated"] = cand / "negated.safetensors"
    save_weights(out["negated"], model, Calibration(1.0, 0.0), "cand-negated", SIZE)
    return out


def gate_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli_main(["gate", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def release_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli_main(["release", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# --------------------------------------------------------------------------- gate


def test_identical_candidate_is_accepted(models, dataset):
    sets = [shared_eval_set(dataset)]
    result = run_gate(models["current"], models["same"], sets)
    assert result.accepted and result.reasons == []
    (row,) = result.rows
    assert (row.eval_set, row.n_human, row.n_ai, row.skipped) == (SHARED_SET, 8, 8, 1)
    assert row.current.auc == row.candidate.auc == 1.0
    assert row.current.fpr_likely_ai == row.candidate.fpr_likely_ai == 0.0
    assert row.current.tpr_likely_ai == 1.0
    assert row.current.ece == pytest.approx(row.candidate.ece) and row.current.ece < 0.2
    assert any("skipped 1 of 17" in w for w in result.warnings)
    assert result.current.version == "good-1" and result.candidate.version == "cand-same"


def test_negated_candidate_is_refused_for_auc(models, dataset):
    result = run_gate(models["current"], models["negated"], [shared_eval_set(dataset)])
    assert not result.accepted
    (row,) = result.rows
    assert row.current.auc == 1.0 and row.candidate.auc == 0.0
    assert any(
        r.startswith(f"AUC on {SHARED_SET} fell from 1.0000 to 0.0000") for r in result.reasons
    )


def test_fpr_rise_is_refused_even_with_the_same_auc(models, dataset):
    result = run_gate(models["current"], models["biased"], [shared_eval_set(dataset)])
    (row,) = result.rows
    assert row.candidate.auc == row.current.auc == 1.0
    assert row.current.fpr_likely_ai == 0.0 and row.candidate.fpr_likely_ai == 1.0
    assert not result.accepted
    (reason,) = result.reasons
    assert "likely_ai" in reason and "rose from 0.0000 to 1.0000" in reason


def test_each_model_is_judged_by_its_own_cutoffs(models, dataset):
    result = run_gate(models["current"], models["biased_cut"], [shared_eval_set(dataset)])
    assert result.candidate.cutoffs == BandCutoffs(0.5, 0.95)
    (row,) = result.rows
    assert row.candidate.fpr_likely_ai == 0.0 and row.candidate.tpr_likely_ai == 1.0
    assert result.accepted


def test_margins_decide(models, dataset):
    sets = [shared_eval_set(dataset)]
    lenient = run_gate(models["current"], models["biased"], sets, Margins(0.01, 1.0))
    assert lenient.accepted
    with pytest.raises(ValueError, match="max_auc_drop"):
        Margins(max_auc_drop=-0.1)


def test_decide_at_the_margin():
    def row(auc: float, fpr: float) -> ModelMetrics:
        return ModelMetrics(auc=auc, fpr_likely_ai=fpr, tpr_likely_ai=0.5, ece=0.1)

    margins = Margins(max_auc_drop=0.01, max_fpr_rise=0.005)
    at_margin = GateRow("s", 200, 100, 0, row(0.90, 0.010), row(0.89, 0.015))
    assert decide([at_margin], margins) == []
    beyond = GateRow("s", 200, 100, 0, row(0.90, 0.010), row(0.8899, 0.0151))
    assert [r.split(" ")[0] for r in decide([beyond], margins)] == ["AUC", "human"]
    # A set without AI images is judged on false positives only.
    humans_only = GateRow(
        "h", 50, 0, 0, ModelMetrics(None, 0.0, None, 0.1), ModelMetrics(None, 0.02, None, 0.1)
    )
    (reason,) = decide([humans_only], margins)
    assert reason.startswith("human images in likely_ai on h rose from 0.0000 to 0.0200")


def test_a_candidate_scoring_nan_is_refused(models, dataset, tmp_path):
    """Diverged weights score NaN, which compares false with every cut-off: no false
    positives, and an AUC from meaningless ranks. Judged against the worst model (AUC 0),
    the figures alone would call it an improvement."""
    model = load_weights(models["same"]).model
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    path = tmp_path / "nan.safetensors"
    save_weights(path, model, Calibration(1.0, 0.0), "cand-nan", SIZE)
    result = run_gate(models["negated"], path, [shared_eval_set(dataset)])
    assert not result.accepted
    (reason,) = result.reasons
    assert reason.startswith(f"the candidate scored 16 image(s) of {SHARED_SET} as NaN")
    assert result.rows[0].candidate.non_finite == 16
    assert result.rows[0].current.non_finite == 0
    # The other way round the comparison is unreliable, and says so.
    reverse = run_gate(path, models["same"], [shared_eval_set(dataset)])
    assert any("current model scored 16 image(s) as NaN" in w for w in reverse.warnings)


def test_export_gates_on_reviewer_heldout_rows_only(models, export):
    eval_set = export_eval_set(export)
    assert len(eval_set.rows) == 6
    assert {(r.split, r.label_origin) for r in eval_set.rows} == {("val", "reviewer")}
    result = run_gate(models["current"], models["same"], [eval_set])
    (row,) = result.rows
    assert (row.n_human, row.n_ai, row.skipped) == (3, 3, 0)
    # The mislabelled confident_score and train rows would have pulled this below 1.
    assert row.current.auc == 1.0


def test_pooled_row_with_several_sets(models, dataset, export):
    sets, notes = build_eval_sets(dataset, [export])
    assert notes == []
    result = run_gate(models["current"], models["negated"], sets)
    names = [r.eval_set for r in result.rows]
    assert names == [SHARED_SET, f"export {export.name}", POOLED]
    pooled = result.rows[-1]
    assert (pooled.n_human, pooled.n_ai) == (11, 11)
    assert sum(r.startswith("AUC on") for r in result.reasons) == 3


def test_no_set_with_both_classes_is_a_data_error(models, tmp_path):
    root = tmp_path / "humans"
    rows = []
    for i in range(3):
        rel = f"images/val/human/{i}.png"
        rows.append(manifest_row(rel, "val", "human", write_image(root, rel, synthetic(i, False))))
    write_manifest(root, rows, MANIFEST_COLUMNS)
    with pytest.raises(GateError, match="both human and AI"):
        run_gate(models["current"], models["same"], [shared_eval_set(root)])


def test_gate_cli_writes_report_and_plot(capsys, models, dataset, export, tmp_path):
    out_dir = tmp_path / "gate"
    code, out, err = gate_cli(
        capsys,
        "--current",
        str(models["current"]),
        "--candidate",
        str(models["same"]),
        "--data",
        str(dataset),
        "--add",
        str(export),
        "--out",
        str(out_dir),
        "--no-progress",
    )
    assert code == 0, err
    assert "ACCEPTED" in out
    assert "warning: shared val: skipped 1 of 17" in err
    report = json.loads((out_dir / "gate.json").read_text())
    assert report["accepted"] is True and report["reasons"] == []
    assert [r["eval_set"] for r in report["rows"]] == [SHARED_SET, f"export {export.name}", POOLED]
    assert report["rows"][0]["n_human"] == 8 and report["rows"][0]["current"]["auc"] == 1.0
    assert report["current"]["sha256"] == file_sha256(models["current"])
    assert report["margins"] == {"max_auc_drop": 0.01, "max_fpr_rise": 0.005}
    with Image.open(out_dir / "gate.png") as plot:
        assert plot.format == "PNG" and plot.width > 600


def test_gate_cli_refuses_with_exit_1(capsys, models, dataset, tmp_path):
    code, out, err = gate_cli(
        capsys,
        "--current",
        str(models["current"]),
        "--candidate",
        str(models["negated"]),
        "--data",
        str(dataset),
        "--out",
        str(tmp_path / "g"),
        "--no-progress",
    )
    assert code == 1, err
    assert "REFUSED" in out and "AUC on shared val fell from 1.0000 to 0.0000" in out
    assert json.loads((tmp_path / "g" / "gate.json").read_text())["accepted"] is False


def test_gate_cli_sample(capsys, models, dataset, tmp_path):
    code, _, err = gate_cli(
        capsys,
        *("--current", str(models["current"]), "--candidate", str(models["same"])),
        *("--data", str(dataset), "--sample", "6", "--out", str(tmp_path), "--no-progress"),
    )
    assert code == 0, err
    (row,) = json.loads((tmp_path / "gate.json").read_text())["rows"]
    assert row["n_human"] + row["n_ai"] + row["skipped"] == 6
    assert row["n_ai"] == 3


@pytest.mark.parametrize(
    ("which", "message"),
    [("current", "No weights at"), ("candidate", "No weights at")],
)
def test_gate_cli_missing_weights(capsys, models, dataset, tmp_path, which, message):
    paths = {"current": str(models["current"]), "candidate": str(models["same"])}
    paths[which] = str(tmp_path / "missing.safetensors")
    code, out, err = gate_cli(
        capsys,
        *("--current", paths["current"], "--candidate", paths["candidate"]),
        *("--data", str(dataset), "--out", str(tmp_path / "g"), "--no-progress"),
    )
    assert code == 2
    assert err.count("\n") == 1 and message in err and "missing.safetensors" in err
    assert not (tmp_path / "g").exists()


def test_gate_cli_usage_and_data_errors(capsys, models, dataset, tmp_path):
    both = ("--current", str(models["current"]), "--candidate", str(models["same"]))
    code, _, err = gate_cli(capsys, *both, "--no-shared", "--out", str(tmp_path))
    assert code == 2 and "no eval set" in err
    code, _, err = gate_cli(capsys, *both, "--data", str(tmp_path / "nowhere"))
    assert code == 2 and "no manifest.csv" in err
    code, _, err = gate_cli(capsys, *both, "--data", str(dataset), "--max-fpr-rise", "2")
    assert code == 2 and "between 0 and 1" in err
    code, _, err = gate_cli(capsys, "--current", str(models["current"]))
    assert code == 2 and "--candidate" in err


# --------------------------------------------------------------------------- release


def _release(capsys, models, dataset, out_dir: Path, candidate: str, version: str, *more: str):
    return release_cli(
        capsys,
        *("--current", str(models["current"]), "--candidate", str(models[candidate])),
        *("--version", version, "--out-dir", str(out_dir), "--data", str(dataset)),
        "--no-progress",
        *more,
    )


def test_release_writes_verified_weights_card_and_plot(capsys, models, dataset, export, tmp_path):
    out_dir = tmp_path / "release"
    code, out, err = _release(
        capsys, models, dataset, out_dir, "same", "0.2.0", "--add", str(export), "--notes", "June."
    )
    assert code == 0, err
    target = out_dir / "humanmade-0.2.0.safetensors"
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "README.md",
        "gate-0.2.0.png",
        target.name,
    ]
    loaded = load_weights(target)  # verifies the sha256 against the card
    sha = file_sha256(target)
    assert loaded.version == "0.2.0" and loaded.sha256 == sha
    current = load_weights(models["current"])
    meta = loaded.metadata
    assert meta["parent_version"] == "good-1" and meta["parent_sha256"] == current.sha256
    assert meta["released_at"] == datetime.now(UTC).date().isoformat()
    assert json.loads(meta["train_counts"]) == TRAIN_COUNTS
    assert meta["calibrated_on"] == "12 reviewed images"
    # Same tensors as the candidate.
    original = load_weights(models["same"]).model.state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, original[key]), key

    card = (out_dir / "README.md").read_text()
    assert card.startswith("# humanmade model card\n")
    assert f"- sha256 of `{target.name}`: `{sha}`" in card
    assert [m["sha"] for m in _CARD_SHA_LINE.finditer(card)] == [sha]
    assert f"- parent: `good-1` (sha256 `{current.sha256}`)" in card
    assert "| shared val | 8 | 8 | 1.0000 | 1.0000 | 0.0000 | 0.0000 | 1.0000 | 1.0000 |" in card
    assert f"| export {export.name} | 3 | 3 | 1.0000 | 1.0000 |" in card
    assert "| human/shared | 100 |" in card and "| reviewer | 8 |" in card
    assert "temperature 1, bias 0" in card and "`likely_human` < 0.2" in card
    assert "calibrated on: 12 reviewed images" in card
    assert "### Notes\n\nJune.\n" in card
    assert "![Release gate 0.2.0](gate-0.2.0.png)" in card
    with Image.open(out_dir / "gate-0.2.0.png") as plot:
        assert plot.format == "PNG"
    assert str(target.resolve()) in out and sha in out
    assert "HUMANMADE_WEIGHTS" in out and "humanmade_rescore" in out


def test_release_keeps_existing_card_and_never_overwrites(capsys, models, dataset, tmp_path):
    out_dir = tmp_path / "weights"
    out_dir.mkdir()
    original = (
        "# Our site's model\n\nHand-written text.\n- sha256 of `old.safetensors`: `"
        + "a" * 64
        + "`"
    )
    (out_dir / "README.md").write_text(original)
    code, _, err = _release(capsys, models, dataset, out_dir, "biased_cut", "1.0")
    assert code == 0, err
    first = out_dir / "humanmade-1.0.safetensors"
    first_sha = file_sha256(first)
    card = (out_dir / "README.md").read_text()
    assert card.startswith(original + "\n\n## Release 1.0\n")
    assert "Not recorded in the weights' metadata" in card  # this candidate has no train_counts

    code, out, err = _release(capsys, models, dataset, out_dir, "same", "1.0")
    assert code == 2 and "never overwritten" in err and "REFUSED" not in out
    assert file_sha256(first) == first_sha
    assert (out_dir / "README.md").read_text() == card

    assert load_weights(first).cutoffs == BandCutoffs(0.5, 0.95)
    assert "`likely_human` < 0.5 ≤ `uncertain` < 0.95 ≤ `likely_ai`" in card
    code, _, err = _release(capsys, models, dataset, out_dir, "same", "1.1")
    assert code == 0, err
    card2 = (out_dir / "README.md").read_text()
    assert card2.startswith(card)
    assert "| human/shared | 100 |" in card2[len(card) :]
    assert load_weights(first).version == "1.0"  # both sha lines are found
    assert load_weights(out_dir / "humanmade-1.1.safetensors").version == "1.1"


def test_release_refuses_worse_candidate_and_writes_nothing(capsys, models, dataset, tmp_path):
    out_dir = tmp_path / "rel"
    code, out, err = _release(capsys, models, dataset, out_dir, "negated", "0.3.0")
    assert code == 1, err
    assert "REFUSED" in out and "AUC on shared val fell" in out and "Nothing was written" in out
    assert not out_dir.exists()
    code, out, _ = _release(capsys, models, dataset, out_dir, "biased", "0.3.0")
    assert code == 1 and "likely_ai" in out
    assert not out_dir.exists()


@pytest.mark.parametrize("version", ["../x", ".hidden", "a/b", "", "v 1"])
def test_release_rejects_unsafe_versions(capsys, models, dataset, tmp_path, version):
    code, _, err = _release(capsys, models, dataset, tmp_path / "rel", "same", version)
    assert code == 2 and "not usable in a file name" in err
    assert not (tmp_path / "rel").exists()


def test_release_missing_candidate(capsys, models, dataset, tmp_path):
    code, _, err = release_cli(
        capsys,
        *("--current", str(models["current"]), "--candidate", str(tmp_path / "nope.safetensors")),
        *("--version", "1", "--out-dir", str(tmp_path / "rel"), "--data", str(dataset)),
    )
    assert code == 2 and "No weights at" in err and err.count("\n") == 1


def test_a_release_that_fails_part_way_leaves_nothing_and_can_be_retried(
    capsys, models, dataset, tmp_path, monkeypatch
):
    """Weights without their card line load unverified and block the version; they go."""
    import detector_core.training.release as release_module

    out_dir = tmp_path / "rel"

    def disk_full(card: Path, section: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(release_module, "append_to_card", disk_full)
    code, _, err = _release(capsys, models, dataset, out_dir, "same", "0.4.0")
    assert code == 2 and "No space left" in err and "nothing was kept" in err
    assert list(out_dir.iterdir()) == []

    def interrupted(result, path: Path) -> Path:
        path.write_bytes(b"half a png")
        raise KeyboardInterrupt

    monkeypatch.setattr(release_module, "write_gate_plot", interrupted)
    code, _, _ = _release(capsys, models, dataset, out_dir, "same", "0.4.0")
    assert code == 130  # Ctrl-C
    assert list(out_dir.iterdir()) == []

    monkeypatch.undo()
    code, _, err = _release(capsys, models, dataset, out_dir, "same", "0.4.0")
    assert code == 0, err
    target = out_dir / "humanmade-0.4.0.safetensors"
    assert load_weights(target).version == "0.4.0"
    # Not safetensors' 0600: the web workers that load it may run as another user.
    assert target.stat().st_mode & 0o044 == 0o044


def test_release_never_overwrites_a_gate_plot_and_checks_the_folder_first(
    capsys, models, dataset, tmp_path
):
    out_dir = tmp_path / "rel"
    out_dir.mkdir()
    plot = out_dir / "gate-0.5.0.png"
    plot.write_bytes(b"someone else's plot")
    code, out, err = _release(capsys, models, dataset, out_dir, "same", "0.5.0")
    assert code == 2 and f"{plot} already exists" in err
    assert "ACCEPTED" not in out  # refused before the gate's scoring
    assert plot.read_bytes() == b"someone else's plot"
    assert sorted(p.name for p in out_dir.iterdir()) == [plot.name]

    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    code, out, err = _release(capsys, models, dataset, a_file, "same", "0.5.0")
    assert code == 2 and "is not a folder" in err and "ACCEPTED" not in out
