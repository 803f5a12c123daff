"""A site's review export as training data, and how much each kind of row may weigh.

An export (`manage.py humanmade_export OUT`) holds two kinds of labels:

- `reviewer`: a person decided in the review queue. These are the most valuable rows: they
  are the site's own images, and mostly the ones the model found hard.
- `confident_score`: nobody looked; the model's calibrated probability was confident. Training
  on them teaches the model what it already believes, including its confident mistakes, so
  they are capped to a share of the draws and down-weighted in the loss.

The export's `val` split is the release gate's held-out slice and is never trained on.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import HumanmadeError
from .data import ManifestRow, balanced_weights, load_pixels

LABEL_ORIGINS = ("reviewer", "confident_score")
ALL_ORIGINS = ("dataset", *LABEL_ORIGINS)
SPLITS = ("train", "val")
REQUIRED_COLUMNS = ("file", "split", "label", "source_group", "label_origin")

# Share of all draws that goes to export rows when the shared dataset is also there. The
# shared data keeps the majority so a fine-tune does not forget the general task; 0.4 still
# shows the site's images (and its reviewers' corrections) several times per epoch.
DEFAULT_FEEDBACK_SHARE = 0.4
# At most this share of all draws may be rows the model labelled itself.
DEFAULT_CONFIDENT_CAP = 0.30
# Per-sample loss weight of those rows (reviewer and dataset rows weigh 1).
DEFAULT_CONFIDENT_WEIGHT = 0.5


class ExportError(ValueError):
    """A review export folder is missing, malformed, or refers to files it does not hold."""


@dataclass(frozen=True)
class ExportRow:
    """A manifest row of an export, with the image's sha256 (to keep val images out of train)."""

    row: ManifestRow
    sha256: str


def read_export_rows(export_dir: Path) -> list[ExportRow]:
    """Every row of an export, validated; see `read_export`."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise ExportError(f"{export_dir} is not a folder (expected a review export)")
    manifest = export_dir / "manifest.csv"
    if not manifest.is_file():
        raise ExportError(
            f"no manifest.csv in {export_dir}: is this a folder written by "
            "`manage.py humanmade_export`?"
        )
    try:
        # utf-8-sig: an export edited in a spreadsheet is saved with a BOM (see data.py).
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ExportError(
                    f"{manifest} lacks the column(s) {', '.join(missing)}; an export for "
                    "training needs label_origin (reviewer or confident_score) on every row"
                )
            raw_rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ExportError(f"cannot read {manifest}: {exc}") from exc

    out = []
    for line, raw in enumerate(raw_rows, start=2):
        where = f"{manifest}, line {line}"
        name = raw["file"] or ""
        if raw["label"] not in ("ai", "human"):
            raise ExportError(f"{where}: label {raw['label']!r} is not 'ai' or 'human'")
        if raw["split"] not in SPLITS:
            raise ExportError(f"{where}: split {raw['split']!r} is not 'train' or 'val'")
        if raw["label_origin"] not in LABEL_ORIGINS:
            raise ExportError(
                f"{where}: label_origin {raw['label_origin']!r} is not one of "
                f"{', '.join(LABEL_ORIGINS)}"
            )
        relative = PurePosixPath(name)
        # Files must live inside the export: a manifest is data, not a licence to read anywhere.
        if not name or relative.is_absolute() or ".." in relative.parts:
            raise ExportError(f"{where}: file {name!r} is not a path inside the export")
        path = export_dir / relative
        if not path.is_file():
            raise ExportError(f"{where}: {name} is listed but {path} does not exist")
        sha = raw.get("sha256") or raw.get("sha256_original") or ""
        if not sha:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        out.append(
            ExportRow(
                row=ManifestRow(
                    file=name,
                    split=raw["split"],
                    label=raw["label"],
                    source_group=raw["source_group"] or "review-export",
                    generator=raw.get("generator") or "",
                    content=raw.get("content") or "",
                    label_origin=raw["label_origin"],
                    model_version=raw.get("model_version") or "",
                ),
                sha256=sha.lower(),
            )
        )
    return out


def read_export(
    export_dir: Path, split: str | None = None, origins: Iterable[str] | None = None
) -> list[ManifestRow]:
    """Validated rows of a review export, optionally only one split and some label origins.

    Raises `ExportError` when the folder has no manifest.csv, a row has an unknown label,
    split or label_origin, or a listed file is missing. Load pixels with
    `data.load_pixels(export_dir, rows)`.
    """
    if split is not None and split not in SPLITS:
        raise ExportError(f"split {split!r} is not 'train' or 'val'")
    wanted = set(LABEL_ORIGINS if origins is None else origins)
    unknown = wanted - set(LABEL_ORIGINS)
    if unknown:
        raise ExportError(
            f"unknown label origin(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(LABEL_ORIGINS)}"
        )
    return [
        e.row
        for e in read_export_rows(export_dir)
        if (split is None or e.row.split == split) and e.row.label_origin in wanted
    ]


@dataclass(frozen=True)
class ExportSplits:
    """The rows of several exports, per export, split into what may be trained on and not."""

    train: list[list[ManifestRow]]
    val: list[list[ManifestRow]]
    # Train rows dropped because the same image is in some export's val slice.
    dropped: int


def read_exports(export_dirs: Sequence[Path], origins: Iterable[str] | None = None) -> ExportSplits:
    """Each export's `train` rows (minus held-out images) and `val` rows, of some origins.

    Exports written with different val percentages (or of overlapping sites) could put the
    same image in one export's train and another's val; the gate's held-out slice must stay
    unseen, so such images are dropped from train.
    """
    wanted = set(LABEL_ORIGINS if origins is None else origins)
    tables = [read_export_rows(d) for d in export_dirs]
    held_out = {e.sha256 for table in tables for e in table if e.row.split == "val"}
    train: list[list[ManifestRow]] = []
    val: list[list[ManifestRow]] = []
    dropped = 0
    for table in tables:
        train.append([])
        val.append([])
        for e in table:
            if e.row.label_origin not in wanted:
                continue
            if e.row.split == "val":
                val[-1].append(e.row)
            elif e.sha256 in held_out:
                dropped += 1
            else:
                train[-1].append(e.row)
    return ExportSplits(train=train, val=val, dropped=dropped)


def load_export_pixels(
    export_dir: Path, rows: Sequence[ManifestRow], progress: bool = True
) -> list[np.ndarray]:
    """`data.load_pixels` for an export, naming the image when one cannot be decoded."""
    from tqdm import tqdm

    arrays = []
    for row in tqdm(
        rows, desc=f"decoding {Path(export_dir).name}", unit="img", disable=not progress
    ):
        try:
            arrays.extend(load_pixels(export_dir, [row], progress=False))
        except (HumanmadeError, OSError) as exc:
            raise ExportError(f"{export_dir / row.file} cannot be used: {exc}") from exc
    return arrays


@dataclass(frozen=True)
class MixConfig:
    """How export rows are mixed with the shared dataset (see `mixed_weights`)."""

    feedback_share: float = DEFAULT_FEEDBACK_SHARE
    confident_cap: float = DEFAULT_CONFIDENT_CAP
    confident_weight: float = DEFAULT_CONFIDENT_WEIGHT

    def __post_init__(self) -> None:
        if not 0.0 < self.feedback_share <= 1.0:
            raise ValueError(f"feedback share must be in (0, 1], got {self.feedback_share}")
        if not 0.0 <= self.confident_cap <= 1.0:
            raise ValueError(f"confident cap must be in [0, 1], got {self.confident_cap}")
        if not 0.0 < self.confident_weight <= 1.0:
            raise ValueError(f"confident weight must be in (0, 1], got {self.confident_weight}")


@dataclass(frozen=True)
class MixedWeights:
    """Rows in training order with their sampling probabilities and per-sample loss weights."""

    rows: list[ManifestRow]
    sampling: list[float]  # sums to 1
    loss: list[float]
    # Expected share of draws per label origin, and per class.
    share_by_origin: dict[str, float]
    share_by_label: dict[str, float]


def _sqrt_group_weights(groups: Sequence[Sequence[int]], mass: float, out: list[float]) -> None:
    """Spread `mass` over index groups by sqrt(group size), equally within a group."""
    groups = [g for g in groups if g]
    total = sum(math.sqrt(len(g)) for g in groups)
    for g in groups:
        per_row = mass * math.sqrt(len(g)) / total / len(g)
        for i in g:
            out[i] += per_row


def mixed_weights(
    shared_rows: Sequence[ManifestRow],
    export_rows: Sequence[Sequence[ManifestRow]],
    cfg: MixConfig | None = None,
) -> MixedWeights:
    """Sampling and loss weights for the shared dataset plus one row list per export.

    Per class (each class keeps half of all draws, as in `data.balanced_weights`):
    - export rows get `feedback_share` of the class's draws (all of them without shared rows
      of that class); each export is its own source group, weighted by sqrt(size);
    - within that, confident_score rows get their count-proportional part but never more than
      `confident_cap` of all draws; what they cannot take goes to the reviewer rows, or, when
      there are none, back to the shared rows;
    - the shared rows share the rest exactly as `balanced_weights` spreads it.
    confident_score rows have loss weight `confident_weight`, all others 1.

    Raises ValueError when a class would be learnt from confident_score rows alone (the model
    would only be taught its own opinion) or has no rows at all.
    """
    cfg = cfg or MixConfig()
    rows = list(shared_rows) + [r for group in export_rows for r in group]
    n_shared = len(shared_rows)
    weights = [0.0] * len(rows)
    shared_bal = balanced_weights(shared_rows) if shared_rows else []
    for label in ("ai", "human"):
        shared_idx = [i for i in range(n_shared) if rows[i].label == label]
        per_export: dict[str, list[list[int]]] = {o: [] for o in LABEL_ORIGINS}
        start = n_shared
        for rows_of_export in export_rows:
            of_origin: dict[str, list[int]] = defaultdict(list)
            for offset, r in enumerate(rows_of_export):
                if r.label == label:
                    of_origin[r.label_origin].append(start + offset)
            for origin in LABEL_ORIGINS:
                per_export[origin].append(of_origin[origin])
            start += len(rows_of_export)
        n_reviewer = sum(len(g) for g in per_export["reviewer"])
        n_confident = sum(len(g) for g in per_export["confident_score"])
        if not shared_idx and not n_reviewer:
            if n_confident:
                raise ValueError(
                    f"the only {label} images are confident_score rows: a model must not be "
                    "trained on its own scores alone (add reviewed images or the shared dataset)"
                )
            raise ValueError(f"no {label} images to train on")
        class_mass = 0.5
        feedback = 0.0
        if n_reviewer + n_confident:
            feedback = class_mass * cfg.feedback_share if shared_idx else class_mass
        # The cap is on all draws; per class it is the same fraction of the class's half.
        confident = min(
            feedback * n_confident / max(1, n_reviewer + n_confident),
            cfg.confident_cap * class_mass,
        )
        reviewer = feedback - confident if n_reviewer else 0.0
        shared = class_mass - confident - reviewer
        _sqrt_group_weights(per_export["reviewer"], reviewer, weights)
        _sqrt_group_weights(per_export["confident_score"], confident, weights)
        if shared_idx:
            # balanced_weights sums to 1 per class over the shared rows.
            for i in shared_idx:
                weights[i] = shared * shared_bal[i]
    total = sum(weights)
    sampling = [w / total for w in weights]
    loss = [cfg.confident_weight if r.label_origin == "confident_score" else 1.0 for r in rows]
    by_origin: Counter[str] = Counter()
    by_label: Counter[str] = Counter()
    for r, p in zip(rows, sampling, strict=True):
        by_origin[r.label_origin] += p
        by_label[r.label] += p
    return MixedWeights(
        rows=rows,
        sampling=sampling,
        loss=loss,
        share_by_origin={o: round(by_origin[o], 6) for o in ALL_ORIGINS},
        share_by_label={k: round(v, 6) for k, v in sorted(by_label.items())},
    )


def summarise_training_data(rows: Iterable[ManifestRow]) -> dict[str, dict[str, int]]:
    """Counts for the weights' metadata and the model card: by label/source and by origin."""
    rows = list(rows)
    by_source = Counter(f"{r.label}/{r.source_group}" for r in rows)
    by_origin = Counter(r.label_origin for r in rows)
    return {
        "by_source": dict(sorted(by_source.items())),
        "by_label_origin": {o: by_origin.get(o, 0) for o in ALL_ORIGINS}
        | {o: n for o, n in sorted(by_origin.items()) if o not in ALL_ORIGINS},
    }
