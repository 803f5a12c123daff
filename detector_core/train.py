"""Train the detector on the shared dataset's `train` split; calibrate on `val`; write a release.

    python -m detector_core.train --out weights/humanmade.safetensors

Knobs live in `TrainConfig`; everything it does is printed. Validation images are never
trained on: they are used for the calibration fit (two parameters) and for reporting only.
The weights written are those of the last epoch: no epoch is picked by its validation score.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from .calibration import fit_calibration
from .data import (
    AugmentConfig,
    AugmentedImages,
    ManifestRow,
    balanced_weights,
    default_dataset_dir,
    load_pixels,
    read_manifest,
    seed_worker,
    summarise,
)
from .evaluate import build_report, headline, logits_for
from .model import ModelConfig, PatchModel, build_model, count_parameters
from .verdict import BandCutoffs
from .weights import save_weights

VERSION = "0.1.0"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 12
    samples_per_epoch: int = 4096
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 5e-4
    tile_size: int = 256
    workers: int = 1
    threads: int = 2
    seed: int = 1234
    model: ModelConfig = field(default_factory=lambda: ModelConfig(backbone="efficientnet-lite0"))
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def _set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_model(
    arrays: list[np.ndarray], targets: list[int], weights: list[float], cfg: TrainConfig
) -> PatchModel:
    """Train from scratch on in-memory RGB arrays; shows a progress bar per epoch."""
    _set_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    model = build_model(cfg.model, pretrained=True)
    dataset = AugmentedImages(arrays, targets, cfg.augment, seed=cfg.seed)
    sampler = WeightedRandomSampler(
        weights,
        num_samples=cfg.samples_per_epoch,
        replacement=True,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        worker_init_fn=seed_worker,
        persistent_workers=cfg.workers > 0,
        drop_last=True,
    )
    steps = cfg.epochs * len(loader)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for epoch in range(cfg.epochs):
        model.train()
        running, seen, correct = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
        for x, y in bar:
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * len(y)
            seen += len(y)
            correct += int(((logits > 0).float() == y).sum())
            bar.set_postfix(loss=f"{running / seen:.4f}", acc=f"{correct / seen:.3f}")
        print(
            f"epoch {epoch + 1}/{cfg.epochs}: train loss {running / seen:.4f}, "
            f"train acc (augmented) {correct / seen:.3f}",
            flush=True,
        )
    model.eval()
    return model


def add_aligned_fakes(
    rows: list[ManifestRow],
    arrays: list[np.ndarray],
    count: int,
    seed: int,
    cache_dir: Path,
) -> tuple[list[ManifestRow], list[np.ndarray]]:
    """Add AI-decoded twins of `count` human train images, labelled AI.

    Each twin has the same content as its original, so the label can only be learnt from
    the decoder's pixels. Twins are cached (outside the repository) by the original's sha256;
    a twin identical to its original (e.g. an all-black image) is dropped.
    """
    import hashlib

    from .twins import TwinAutoencoder, make_twins

    humans = [i for i, r in enumerate(rows) if r.label == "human"]
    picked = random.Random(seed).sample(humans, min(count, len(humans)))
    cache_dir.mkdir(parents=True, exist_ok=True)
    keys = [hashlib.sha256(arrays[i].tobytes()).hexdigest()[:32] for i in picked]
    missing = [
        (i, k) for i, k in zip(picked, keys, strict=True) if not (cache_dir / f"{k}.npy").is_file()
    ]
    if missing:
        model = TwinAutoencoder.from_dir()
        torch.set_num_threads(TrainConfig.threads)
        made = make_twins([arrays[i] for i, _ in missing], model)
        for (_, key), twin in zip(missing, made, strict=True):
            np.save(cache_dir / f"{key}.npy", twin)
    out_rows, out_arrays = list(rows), list(arrays)
    kept = 0
    for i, key in zip(picked, keys, strict=True):
        twin = np.load(cache_dir / f"{key}.npy")
        if twin.shape != arrays[i].shape or np.array_equal(twin, arrays[i]):
            continue
        source = rows[i]
        out_rows.append(
            replace(source, label="ai", source_group="twins:taef2", generator="TAEF2 decoder twin")
        )
        out_arrays.append(twin)
        kept += 1
    print(f"aligned fakes: {kept} twins of human train images added as AI", flush=True)
    return out_rows, out_arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="humanmade train", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="dataset folder (manifest.csv)")
    parser.add_argument("--out", type=Path, default=Path("weights/humanmade.safetensors"))
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--samples-per-epoch", type=int, default=TrainConfig.samples_per_epoch)
    parser.add_argument("--limit", type=int, default=0, help="use only N train images (smoke runs)")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument(
        "--backbone",
        choices=("localtrace", "efficientnet-lite0"),
        default=TrainConfig().model.backbone,
    )
    parser.add_argument("--crop", type=int, default=AugmentConfig.crop)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--p-jpeg", type=float, default=AugmentConfig.p_jpeg)
    parser.add_argument(
        "--twins",
        type=int,
        default=0,
        metavar="N",
        help="add AI-decoded twins of N human train images (aligned fakes; needs the "
        "autoencoders in ../shared/generators). The release was trained without (see its card)",
    )
    parser.add_argument(
        "--twins-cache",
        type=Path,
        default=Path.home() / ".cache" / "humanmade" / "twins",
        help="where twins are cached between runs (outside the repository)",
    )
    args = parser.parse_args(argv)

    base = TrainConfig()
    cfg = replace(
        base,
        epochs=args.epochs,
        samples_per_epoch=args.samples_per_epoch,
        seed=args.seed,
        lr=args.lr,
        model=replace(base.model, backbone=args.backbone),
        augment=replace(base.augment, crop=args.crop, p_jpeg=args.p_jpeg),
    )
    data_dir = args.data or default_dataset_dir()
    train_rows = read_manifest(data_dir, "train")
    val_rows = read_manifest(data_dir, "val")
    if args.limit:
        rng = random.Random(cfg.seed)
        train_rows = rng.sample(train_rows, min(args.limit, len(train_rows)))
        val_rows = rng.sample(val_rows, min(args.limit, len(val_rows)))
    print(f"data: {data_dir} {summarise(train_rows + val_rows)}", flush=True)
    print(f"config: {json.dumps(asdict(cfg), default=str)}", flush=True)

    started = time.time()
    train_arrays = load_pixels(data_dir, train_rows)
    if args.twins:
        train_rows, train_arrays = add_aligned_fakes(
            train_rows, train_arrays, args.twins, cfg.seed, args.twins_cache
        )
    model = train_model(
        train_arrays, [r.target for r in train_rows], balanced_weights(train_rows), cfg
    )
    train_minutes = (time.time() - started) / 60
    print(f"trained {count_parameters(model):,} parameters in {train_minutes:.1f} min", flush=True)

    val_arrays = load_pixels(data_dir, val_rows)
    val_logits = logits_for(model, val_arrays, cfg.tile_size)
    calibration = fit_calibration(val_logits, np.array([r.target for r in val_rows]))
    print(f"calibration (fitted on val): {calibration}", flush=True)
    report = build_report(val_rows, val_logits, calibration, BandCutoffs())
    print(f"val AUC {report['auc']:.4f}, accuracy@0.5 {report['accuracy_at_0.5']:.4f}", flush=True)
    sha = save_weights(
        args.out,
        model,
        calibration,
        VERSION,
        cfg.tile_size,
        extra={
            "train_config": json.dumps(asdict(cfg), default=str),
            "train_counts": json.dumps(summarise(train_rows)),
            "aligned_fakes": str(args.twins),
            "train_minutes": f"{train_minutes:.1f}",
            "calibrated_on": "val",
            "val_report": json.dumps(headline(report)),
        },
    )
    print(f"wrote {args.out} sha256 {sha}", flush=True)
    if not math.isfinite(calibration.temperature):
        print("warning: calibration diverged", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
