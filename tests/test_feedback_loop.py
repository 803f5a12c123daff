"""The whole feedback loop on small generated data, as a site admin would run it:

upload → score → review through the API → export → fine-tune → gate → release → re-score.

"Human" images are smooth gradients with mild noise; "AI" images carry strong pixel noise
(a stand-in for a generator's trace). The base model is the random tiny test network, so a
fine-tune that learns the trace must beat it, and the same model with its head negated must
be refused by the gate.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from cms_support import humanmade_conf, make_user
from conftest import encode
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image
from rest_framework.test import APIClient
from safetensors.torch import load_file, save_file

from cms_plugin.models import Detection
from detector_core.training import gate, release, train
from detector_core.weights import load_weights

SIZE = 96


def synthetic(label: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    base = np.stack(
        [
            rng.uniform(40, 200) + rng.uniform(-0.8, 0.8) * x + rng.uniform(-0.8, 0.8) * y
            for _ in range(3)
        ],
        axis=-1,
    )
    # Strong pixel noise survives the training augmentation (JPEG, rescaling, blur), so the
    # tiny network can learn it in seconds.
    base += rng.normal(0, 24.0 if label == "ai" else 2.0, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def write_dataset(folder: Path, per_class: dict[str, int], seed: int) -> Path:
    """A dataset in the shared manifest format (the site's stand-in for ../shared/datasets)."""
    rows = []
    for s, (split, count) in enumerate(per_class.items()):
        for c, label in enumerate(("human", "ai")):
            for i in range(count):
                name = f"images/{split}/{label}/{i}.png"
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                synthetic(label, seed + 1000 * s + 100 * c + i).save(folder / name)
                rows.append(
                    {
                        "file": name,
                        "split": split,
                        "label": label,
                        "source_group": f"synthetic-{label}-{split}",
                        "generator": "checkerboard" if label == "ai" else "",
                        "content": "other",
                    }
                )
    with (folder / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


def negated_head(weights: Path, out: Path, version: str) -> Path:
    """The same model with its 1×1 head negated: every ranking turned upside down.

    A model card is written beside it, as a release would have.
    """
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as fh:
        metadata = dict(fh.metadata())
    state = load_file(str(weights))
    for key in ("head.weight", "head.bias"):
        state[key] = -state[key]
    save_file(state, str(out), metadata={**metadata, "version": version})
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    card = out.parent / "README.md"
    with card.open("a") as fh:
        fh.write(f"- sha256 of `{out.name}`: `{sha}`\n")
    return out


@pytest.mark.django_db
def test_reviews_become_a_released_model_that_rescoring_picks_up(
    settings, tiny_weights, tmp_path, django_capture_on_commit_callbacks
):
    # The site's current model ranks this data upside down (the tiny network, head negated):
    # the reviewers' decisions have something to fix.
    site = tmp_path / "site-weights"
    site.mkdir()
    current = negated_head(tiny_weights, site / "humanmade-0.9.0.safetensors", "0.9.0")
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.HUMANMADE = humanmade_conf(
        current, CUTOFFS=None, EXPORT_FIELDS=["api"], COLLECT_CONFIDENT=True
    )
    client = APIClient()
    client.force_authenticate(make_user("editor", "review_detection"))

    # Upload and score (in-process, as the demo does), then a person decides each image.
    truth = {}
    for i in range(24):
        label = "ai" if i % 2 else "human"
        data = encode(synthetic(label, 500 + i))
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/api/detections/", {"file": SimpleUploadedFile(f"{i}.png", data, "image/png")}
            )
        assert response.status_code == 202, response.content
        body = client.get(response.headers["Location"]).json()
        assert body["model_version"] == "0.9.0" and body["probability"] is not None
        decision = "ai_generated" if label == "ai" else "human_made"
        reviewed = client.post(
            f"/api/detections/{body['id']}/review/", {"decision": decision}, format="json"
        )
        assert reviewed.status_code == 200, reviewed.content
        truth[hashlib.sha256(data).hexdigest()] = label
    before = {d.pk: d.probability for d in Detection.objects.all()}

    # Export: every row is a reviewer label with the version that scored it.
    export = tmp_path / "export"
    call_command("humanmade_export", str(export), "--val-percent", "40")
    with (export / "manifest.csv").open() as fh:
        exported = list(csv.DictReader(fh))
    assert len(exported) == 24
    assert {r["label_origin"] for r in exported} == {"reviewer"}
    assert {r["model_version"] for r in exported} == {"0.9.0"}
    assert all(truth[r["sha256"]] == r["label"] for r in exported)
    held_out = [r for r in exported if r["split"] == "val"]
    assert {r["label"] for r in held_out} == {"human", "ai"}

    # Fine-tune the site's model on the shared data plus the export.
    dataset = write_dataset(tmp_path / "dataset", {"train": 24, "val": 16}, seed=0)
    candidate = tmp_path / "candidate.safetensors"
    code = train.main(
        [
            *("--base", str(current), "--add", str(export), "--data", str(dataset)),
            *("--out", str(candidate), "--version", "1.0.0", "--epochs", "6"),
            *("--samples-per-epoch", "256", "--lr", "3e-3", "--workers", "0"),
        ]
    )
    assert code == 0
    trained = load_weights(
        candidate, expected_sha256=hashlib.sha256(candidate.read_bytes()).hexdigest()
    )
    counts = json.loads(trained.metadata["train_counts"])
    assert counts["by_label_origin"]["reviewer"] == len(exported) - len(held_out)
    assert trained.metadata["parent_version"] == "0.9.0"

    # The gate compares both on the shared val split and the export's held-out slice.
    data_args = ["--data", str(dataset), "--add", str(export)]
    code = gate.main(
        [*data_args, "--current", str(current), "--candidate", str(candidate)]
        + ["--out", str(tmp_path / "gate")]
    )
    assert code == 0
    report = json.loads((tmp_path / "gate" / "gate.json").read_text())
    assert report["accepted"] is True
    assert (tmp_path / "gate" / "gate.png").stat().st_size > 0

    # Release: weights, sha256 and a card section beside the current release.
    code = release.main(
        [*data_args, "--current", str(current), "--candidate", str(candidate)]
        + ["--version", "1.0.0", "--out-dir", str(site)]
    )
    assert code == 0
    released = site / "humanmade-1.0.0.safetensors"
    assert load_weights(released).version == "1.0.0"  # verified against the card
    card = (site / "README.md").read_text()
    assert "1.0.0" in card and "0.9.0" in card and "reviewer" in card

    # A deliberately worse candidate (the release, head negated) is refused; nothing written.
    worse = negated_head(released, tmp_path / "worse.safetensors", "1.0.1")
    code = gate.main(
        [*data_args, "--current", str(released), "--candidate", str(worse)]
        + ["--out", str(tmp_path / "refused")]
    )
    assert code == 1
    refused = json.loads((tmp_path / "refused" / "gate.json").read_text())
    assert refused["accepted"] is False and any("AUC" in r for r in refused["reasons"])
    code = release.main(
        [*data_args, "--current", str(released), "--candidate", str(worse)]
        + ["--version", "1.0.1", "--out-dir", str(site)]
    )
    assert code == 1
    assert not (site / "humanmade-1.0.1.safetensors").exists()

    # Deploy and re-score: every detection names the new version and keeps the old verdict.
    settings.HUMANMADE = {**settings.HUMANMADE, "WEIGHTS": str(released)}
    call_command("humanmade_rescore")
    detections = list(Detection.objects.order_by("pk"))
    assert {d.model_version for d in detections} == {"1.0.0"}
    assert {d.previous_model_version for d in detections} == {"0.9.0"}
    assert all(d.previous_probability == before[d.pk] for d in detections)
    assert all(d.status == Detection.Status.REVIEWED for d in detections)  # decisions stay
    body = client.get(f"/api/detections/{detections[0].pk}/").json()
    assert body["model_version"] == "1.0.0" and body["previous_model_version"] == "0.9.0"
    # The reviewed images: the old model ranked them upside down, the new one does not.
    ai = [d for d in detections if truth[d.sha256] == "ai"]
    human = [d for d in detections if truth[d.sha256] == "human"]
    assert np.mean([d.previous_probability for d in ai]) < np.mean(
        [d.previous_probability for d in human]
    )
    assert np.mean([d.probability for d in ai]) > np.mean([d.probability for d in human]) + 0.5
