"""Train the detector on the shared dataset's `train` split; calibrate on `val`; write a release.

    python -m detector_core.training.train --out weights/humanmade.safetensors
    humanmade train --base weights/humanmade.safetensors --add site-export/ --out new.safetensors

Knobs live in `TrainConfig`; everything it does is printed. Validation images are never
trained on: they are used for the calibration fit (two parameters) and for reporting only.
The weights written are those of the last epoch: no epoch is picked by its validation score.

`--base` fine-tunes existing weights (fewer epochs, lower learning rate by default) and
`--add` mixes in a site's review export (see `detector_core.training.feedback` for the weighting).
An export's `val` rows are the release gate's held-out slice and are never trained on.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from ..argtypes import fraction, int_at_least, report_error
from ..calibration import Calibration, fit_calibration
from ..errors import WeightsError
from ..experts.trace import ModelConfig, PatchModel, build_model, count_parameters
from ..verdict import BandCutoffs
from ..weights import LoadedWeights, load_weights, output_problem, save_weights
from .data import (
    DATASET_ENV,
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
from .feedback import (
    DEFAULT_CONFIDENT_CAP,
    DEFAULT_CONFIDENT_WEIGHT,
    DEFAULT_FEEDBACK_SHARE,
    ExportError,
    MixConfig,
    load_export_pixels,
    mixed_weights,
    read_exports,
    summarise_training_data,
)

PROG = "humanmade train"

VERSION = "0.1.0"
# Fine-tuning defaults: a few gentle epochs, so the base model's general knowledge survives.
FINETUNE_EPOCHS = 3
FINETUNE_LR = 2e-4


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


class WeightedAugmentedImages(AugmentedImages):
    """AugmentedImages that also yields each image's loss weight."""

    def __init__(
        self,
        arrays: list[np.ndarray],
        targets: list[int],
        loss_weights: list[float],
        cfg: AugmentConfig,
        seed: int = 0,
    ) -> None:
        super().__init__(arrays, targets, cfg, seed=seed)
        self.loss_weights = list(loss_weights)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = super().__getitem__(index)
        return x, y, torch.tensor(float(self.loss_weights[index]))


def train_model(
    arrays: list[np.ndarray],
    targets: list[int],
    weights: list[float],
    cfg: TrainConfig,
    *,
    loss_weights: list[float] | None = None,
    model: PatchModel | None = None,
) -> PatchModel:
    """Train on in-memory RGB arrays; shows a progress bar per epoch.

    `weights` are sampling weights. `loss_weights` (optional) scale each image's loss, so
    rows the model labelled itself count less. `model`: fine-tune this one instead of
    building a fresh one from `cfg.model`.
    """
    _set_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    if model is None:
        model = build_model(cfg.model, pretrained=True)
    else:
        # load_weights freezes parameters for inference; fine-tuning needs them back.
        for param in model.parameters():
            param.requires_grad_(True)
    if loss_weights is None:
        dataset: AugmentedImages = AugmentedImages(arrays, targets, cfg.augment, seed=cfg.seed)
    else:
        dataset = WeightedAugmentedImages(arrays, targets, loss_weights, cfg.augment, seed=cfg.seed)
    sampler = WeightedRandomSampler(
        weights,
        num_samples=cfg.samples_per_epoch,
        replacement=True,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    loader = DataLoader(
        dataset,
        # A smoke run may draw fewer images than a batch; drop_last must still leave one.
        batch_size=min(cfg.batch_size, cfg.samples_per_epoch),
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
    per_sample_loss = torch.nn.BCEWithLogitsLoss(reduction="none")
    for epoch in range(cfg.epochs):
        model.train()
        running, seen, correct = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", leave=False)
        for batch in bar:
            x, y = batch[0], batch[1]
            logits = model(x)
            if loss_weights is None:
                loss = loss_fn(logits, y)
            else:
                loss = (per_sample_loss(logits, y) * batch[2]).mean()
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"shared dataset folder (manifest.csv; default ${DATASET_ENV} or ../shared/datasets). "
        "May be absent only when --add is given",
    )
    parser.add_argument("--out", type=Path, default=Path("weights/humanmade.safetensors"))
    parser.add_argument(
        "--base",
        type=Path,
        default=None,
        metavar="WEIGHTS",
        help="fine-tune these weights (their architecture, tile size and band cut-offs) instead "
        f"of training from scratch; then --epochs defaults to {FINETUNE_EPOCHS} and --lr to "
        f"{FINETUNE_LR:g}",
    )
    parser.add_argument(
        "--add",
        type=Path,
        action="append",
        default=[],
        metavar="EXPORT_DIR",
        help="also train on a site's review export (its train split only; repeatable)",
    )
    parser.add_argument(
        "--version", default=None, help=f"model version (default {VERSION}, or BASE-ft)"
    )
    parser.add_argument(
        "--epochs",
        type=int_at_least(1),
        default=None,
        help=f"default {TrainConfig.epochs} ({FINETUNE_EPOCHS} with --base)",
    )
    parser.add_argument(
        "--samples-per-epoch", type=int_at_least(1), default=TrainConfig.samples_per_epoch
    )
    parser.add_argument("--batch-size", type=int_at_least(1), default=TrainConfig.batch_size)
    parser.add_argument(
        "--workers",
        type=int_at_least(0),
        default=TrainConfig.workers,
        help="data loader worker processes (0: load in the main process)",
    )
    parser.add_argument("--threads", type=int_at_least(1), default=TrainConfig.threads)
    parser.add_argument(
        "--limit",
        type=int_at_least(0),
        default=0,
        help="use only N shared train (and N val) images (smoke runs)",
    )
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument(
        "--backbone",
        choices=("localtrace", "efficientnet-lite0"),
        default=None,
        help=f"default {TrainConfig().model.backbone}; not with --base",
    )
    parser.add_argument(
        "--crop",
        type=int_at_least(32),
        default=None,
        help=f"training crop in px (default {AugmentConfig.crop}, or the tile size if smaller); "
        "at most the model's tile size",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"default {TrainConfig.lr:g} ({FINETUNE_LR:g} with --base)",
    )
    parser.add_argument("--p-jpeg", type=fraction, default=AugmentConfig.p_jpeg)
    # Added after v0.1.0 was trained; set all three to 0 to reproduce its recipe.
    parser.add_argument("--p-low-jpeg", type=fraction, default=AugmentConfig.p_low_jpeg)
    parser.add_argument("--p-colour", type=fraction, default=AugmentConfig.p_colour)
    parser.add_argument("--p-screenshot", type=fraction, default=AugmentConfig.p_screenshot)
    parser.add_argument("--p-rescale", type=fraction, default=AugmentConfig.p_rescale)
    parser.add_argument(
        "--feedback-share",
        type=float,
        default=DEFAULT_FEEDBACK_SHARE,
        help="share of draws given to export rows when the shared dataset is there too "
        f"(default {DEFAULT_FEEDBACK_SHARE})",
    )
    parser.add_argument(
        "--confident-cap",
        type=float,
        default=DEFAULT_CONFIDENT_CAP,
        help="at most this share of draws may be confident_score rows "
        f"(default {DEFAULT_CONFIDENT_CAP})",
    )
    parser.add_argument(
        "--confident-weight",
        type=float,
        default=DEFAULT_CONFIDENT_WEIGHT,
        help=f"loss weight of confident_score rows (default {DEFAULT_CONFIDENT_WEIGHT})",
    )
    parser.add_argument(
        "--twins",
        type=int_at_least(0),
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
    return parser


def _config(args: argparse.Namespace, base_weights: LoadedWeights | None) -> TrainConfig:
    """The run's TrainConfig; raises ValueError for arguments that do not fit together."""
    base = TrainConfig()
    fine_tune = base_weights is not None
    tile_size = base_weights.tile_size if base_weights is not None else base.tile_size
    crop = args.crop if args.crop is not None else min(AugmentConfig.crop, tile_size)
    if crop > tile_size:
        # The Detector never shows the model more than one tile at a time.
        raise ValueError(f"--crop {crop} is larger than the model's tile size ({tile_size} px)")
    if base_weights is not None:
        model = base_weights.model.config
    else:
        model = replace(base.model, backbone=args.backbone or base.model.backbone)
    lr = args.lr if args.lr is not None else (FINETUNE_LR if fine_tune else base.lr)
    if not lr > 0:
        raise ValueError(f"--lr must be positive, got {lr}")
    return replace(
        base,
        epochs=args.epochs or (FINETUNE_EPOCHS if fine_tune else base.epochs),
        samples_per_epoch=args.samples_per_epoch,
        batch_size=args.batch_size,
        lr=lr,
        tile_size=tile_size,
        workers=args.workers,
        threads=args.threads,
        seed=args.seed,
        model=model,
        augment=replace(
            base.augment,
            crop=crop,
            p_jpeg=args.p_jpeg,
            p_low_jpeg=args.p_low_jpeg,
            p_colour=args.p_colour,
            p_screenshot=args.p_screenshot,
            p_rescale=args.p_rescale,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    exports: list[Path] = list(args.add)
    base_weights: LoadedWeights | None = None
    if args.base is not None:
        if args.backbone is not None:
            return report_error(
                PROG, "--backbone cannot be combined with --base (the base fixes it)"
            )
        try:
            base_weights = load_weights(args.base)
        except WeightsError as exc:
            return report_error(PROG, str(exc))
        if not base_weights.single_expert:
            # Its fusion weights were fitted to the trace network as it is; a fine-tuned
            # network needs them fitted again.
            return report_error(
                PROG,
                f"{args.base.name} fuses several experts; fine-tune its trace network "
                "(the weights named in its trace_source) and run `humanmade fuse --trace` "
                "on the result",
            )
    # Checked now, not after hours of training; --out defaults to the committed release,
    # which is also the usual --base.
    problem = output_problem(args.out, args.base)
    if problem:
        return report_error(PROG, f"--out: {problem}")
    try:
        cfg = _config(args, base_weights)
        mix_cfg = MixConfig(args.feedback_share, args.confident_cap, args.confident_weight)
    except ValueError as exc:
        return report_error(PROG, str(exc))

    data_dir = args.data or default_dataset_dir()
    have_shared = (data_dir / "manifest.csv").is_file()
    if not have_shared:
        if args.data is not None:
            return report_error(PROG, f"no manifest.csv in {data_dir}")
        if not exports:
            return report_error(
                PROG,
                f"no shared dataset at {data_dir} (pass --data DIR or set {DATASET_ENV}); "
                "without one, training needs --add EXPORT_DIR",
            )
        print(f"note: no shared dataset at {data_dir}; training on the exports only", flush=True)
    try:
        train_rows = read_manifest(data_dir, "train") if have_shared else []
        val_rows = read_manifest(data_dir, "val") if have_shared else []
        splits = read_exports(exports)
    except KeyError as exc:
        return report_error(PROG, f"{data_dir / 'manifest.csv'} lacks the column {exc}")
    except (ValueError, OSError) as exc:  # ExportError is a ValueError
        return report_error(PROG, str(exc))
    if args.limit:
        rng = random.Random(cfg.seed)
        train_rows = rng.sample(train_rows, min(args.limit, len(train_rows)))
        val_rows = rng.sample(val_rows, min(args.limit, len(val_rows)))
    if have_shared:
        print(f"data: {data_dir} {summarise(train_rows + val_rows)}", flush=True)
    for folder, train, val in zip(exports, splits.train, splits.val, strict=True):
        reviewed = sum(r.label_origin == "reviewer" for r in train)
        print(
            f"export {folder}: {len(train)} train rows ({reviewed} reviewer, "
            f"{len(train) - reviewed} confident_score); {len(val)} val rows held out for the "
            "release gate (never trained on)",
            flush=True,
        )
    if splits.dropped:
        print(
            f"export: {splits.dropped} train rows dropped: their image is in an export's val slice",
            flush=True,
        )
    if base_weights is not None:
        print(f"base: {args.base} version {base_weights.version} ({base_weights.sha256[:12]})")
    print(f"config: {json.dumps(asdict(cfg), default=str)}", flush=True)

    # Decide what calibration is fitted on before spending time on training.
    if val_rows:
        calibrated_on = "val"
    else:
        labels = {r.label for rows in splits.train for r in rows if r.label_origin == "reviewer"}
        if labels != {"ai", "human"}:
            return report_error(
                PROG,
                "no shared val split to calibrate on, and the exports' train split lacks "
                "reviewer-labelled images of both classes",
            )
        calibrated_on = (
            "reviewer-labelled rows of the exports' train split (no shared val split; "
            "in-sample: the model was also trained on them)"
        )
    if exports:
        try:
            mixed_weights(train_rows, splits.train, mix_cfg)  # fail before decoding images
        except ValueError as exc:
            return report_error(PROG, str(exc))
    elif not train_rows:
        return report_error(PROG, f"{data_dir} has no train rows")

    started = time.time()
    train_arrays = load_pixels(data_dir, train_rows) if train_rows else []
    if args.twins:
        train_rows, train_arrays = add_aligned_fakes(
            train_rows, train_arrays, args.twins, cfg.seed, args.twins_cache
        )
    all_rows: list[ManifestRow] = train_rows
    all_arrays = train_arrays
    sampling = balanced_weights(train_rows) if train_rows else []
    loss_weights: list[float] | None = None
    feedback_meta: dict = {}
    if exports:
        try:
            for folder, rows in zip(exports, splits.train, strict=True):
                all_arrays = all_arrays + load_export_pixels(folder, rows)
        except ExportError as exc:
            return report_error(PROG, str(exc))
        mix = mixed_weights(train_rows, splits.train, mix_cfg)
        all_rows, sampling, loss_weights = mix.rows, mix.sampling, mix.loss
        print(
            f"expected share of draws: by origin {mix.share_by_origin}, by class "
            f"{mix.share_by_label}; confident_score loss weight {mix_cfg.confident_weight}",
            flush=True,
        )
        feedback_meta = {
            "exports": [
                {"name": folder.name, "train_rows": len(train), "val_rows_held_out": len(val)}
                for folder, train, val in zip(exports, splits.train, splits.val, strict=True)
            ],
            "dropped_as_held_out": splits.dropped,
            **asdict(mix_cfg),
            "expected_share_by_origin": mix.share_by_origin,
        }

    model = train_model(
        all_arrays,
        [r.target for r in all_rows],
        sampling,
        cfg,
        loss_weights=loss_weights,
        model=base_weights.model if base_weights is not None else None,
    )
    train_minutes = (time.time() - started) / 60
    print(f"trained {count_parameters(model):,} parameters in {train_minutes:.1f} min", flush=True)

    if val_rows:
        cal_rows, cal_arrays = val_rows, load_pixels(data_dir, val_rows)
    else:
        picked = [i for i, r in enumerate(all_rows) if r.label_origin == "reviewer"]
        cal_rows = [all_rows[i] for i in picked]
        cal_arrays = [all_arrays[i] for i in picked]
    cal_logits = logits_for(model, cal_arrays, cfg.tile_size)
    calibration: Calibration = fit_calibration(cal_logits, np.array([r.target for r in cal_rows]))
    print(f"calibration (fitted on {calibrated_on}): {calibration}", flush=True)
    cutoffs = base_weights.cutoffs if base_weights is not None else BandCutoffs()
    report = build_report(cal_rows, cal_logits, calibration, cutoffs)
    where = "val" if val_rows else "calibration rows (in-sample)"
    print(f"{where} AUC {report['auc']:.4f}, accuracy@0.5 {report['accuracy_at_0.5']:.4f}")

    version = args.version or (f"{base_weights.version}-ft" if base_weights else VERSION)
    extra = {
        "train_config": json.dumps(asdict(cfg), default=str),
        "train_counts": json.dumps(
            summarise_training_data(all_rows)
            if exports or base_weights is not None
            else summarise(train_rows)
        ),
        "aligned_fakes": str(args.twins),
        "train_minutes": f"{train_minutes:.1f}",
        "calibrated_on": calibrated_on,
        ("val_report" if val_rows else "calibration_report_in_sample"): json.dumps(
            headline(report)
        ),
    }
    if base_weights is not None:
        extra["parent_version"] = base_weights.version
        extra["parent_sha256"] = base_weights.sha256
    if feedback_meta:
        extra["feedback"] = json.dumps(feedback_meta)
    try:
        sha = save_weights(
            args.out,
            model,
            calibration,
            version,
            cfg.tile_size,
            extra=extra,
            # A fine-tune keeps the cut-offs its base was released with; `humanmade calibrate`
            # is the tool that moves them.
            cutoffs=base_weights.cutoffs if base_weights is not None else None,
        )
    except OSError as exc:
        print(f"humanmade train: error: the trained model was not saved: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (version {version}) sha256 {sha}", flush=True)
    if not math.isfinite(calibration.temperature):
        print("warning: calibration diverged", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
