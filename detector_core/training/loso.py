"""Leave-one-generator-family-out: how the recipe does on a generator it never saw.

    humanmade loso --out reports/loso [--epochs 3 --samples-per-epoch 2048]

For each family, a model is trained from the same recipe without that family's AI images,
then scored on them (they are in `train`, but this model never saw them) against every
human image of `val` (never trained on). Short budgets keep it within CPU reach; the
figures compare families with each other, not with the release.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from .data import balanced_weights, default_dataset_dir, load_pixels, read_manifest
from .evaluate import logits_for
from .metrics import roc_auc, tpr_at_fpr
from .train import TrainConfig, train_model

# Ordered: the first pattern that matches the manifest's `generator` names the family.
FAMILIES: dict[str, str] = {
    "Midjourney": r"midjourney",
    "OpenAI (DALL-E 2, GLIDE)": r"dall-e 2|glide",
    "GAN (AttnGAN)": r"attngan",
    "Gemini": r"gemini|nano-banana",
    "FLUX": r"flux",
    "SDXL": r"\bxl\b|sdxl",
}


def family_of(generator: str) -> str | None:
    for family, pattern in FAMILIES.items():
        if re.search(pattern, generator, re.IGNORECASE):
            return family
    return None


def run(data_dir: Path, cfg: TrainConfig, families: list[str]) -> list[dict]:
    train_rows = read_manifest(data_dir, "train")
    val_humans = [r for r in read_manifest(data_dir, "val") if r.label == "human"]
    train_arrays = load_pixels(data_dir, train_rows)
    human_arrays = load_pixels(data_dir, val_humans)
    results = []
    for family in families:
        held = [
            i
            for i, r in enumerate(train_rows)
            if r.label == "ai" and family_of(r.generator) == family
        ]
        held_set = set(held)
        kept = [i for i in range(len(train_rows)) if i not in held_set]
        rows = [train_rows[i] for i in kept]
        print(f"== {family}: {len(held)} AI images held out, training on {len(rows)}", flush=True)
        model = train_model(
            [train_arrays[i] for i in kept], [r.target for r in rows], balanced_weights(rows), cfg
        )
        held_logits = logits_for(model, [train_arrays[i] for i in held], 256)
        human_logits = logits_for(model, human_arrays, 256)
        scores = np.r_[held_logits, human_logits]
        targets = np.r_[np.ones(len(held)), np.zeros(len(human_logits))]
        results.append(
            {
                "family": family,
                "held_out_ai": len(held),
                "val_human": len(human_logits),
                "auc": roc_auc(targets, scores),
                "tpr_at_5pct_fpr": tpr_at_fpr(targets, scores, 0.05),
            }
        )
        print(f"   AUC {results[-1]['auc']:.3f}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="humanmade loso", description=__doc__)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("reports/loso"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples-per-epoch", type=int, default=2048)
    parser.add_argument("--family", action="append", choices=list(FAMILIES), default=None)
    args = parser.parse_args(argv)
    cfg = replace(TrainConfig(), epochs=args.epochs, samples_per_epoch=args.samples_per_epoch)
    results = run(args.data or default_dataset_dir(), cfg, args.family or list(FAMILIES))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loso.json").write_text(json.dumps(results, indent=2))
    print(f"{'held-out family':28s} {'AI':>5} {'AUC':>6} {'TPR@5%FPR':>10}")
    for r in results:
        auc, tpr = r["auc"], r["tpr_at_5pct_fpr"]
        print(f"{r['family']:28s} {r['held_out_ai']:>5} {auc:>6.3f} {tpr:>10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
