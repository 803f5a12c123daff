"""`manage.py humanmade_export OUT`: labelled images for the next model (the feedback loop).

Writes `OUT/images/<split>/<label>/<file>` (the original bytes, unchanged) and
`OUT/manifest.csv` with the training manifest's columns (see the shared datasets README)
plus `label_origin` ("reviewer" or "confident_score"), `model_version` and `sha256`.
`split` is "val" for a fixed slice of images chosen by their sha256
(`int(sha256[:8], 16) % 100 < --val-percent`), so the same image always lands on the same
side, run after run. Which images may be exported and with which label: `cms_plugin.export`.
Running it again adds new images and rewrites the manifest; files already written are kept.
Files and the manifest are written to a temporary name and moved into place, so an interrupted
run leaves no truncated image or manifest behind. `--dry-run` lists what would be written and
writes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date

from cms_plugin import services
from cms_plugin.conf import humanmade_settings
from cms_plugin.export import REVIEWER, Candidate, ExportRefused, plan_export
from detector_core.csv_safe import safe_row

MANIFEST_COLUMNS = (
    "file",
    "split",
    "label",
    "source_group",
    "generator",
    "content",
    "width",
    "height",
    "format",
    "grid",
    "sha256_original",
    "transform",
    "license",
    "origin",
    "evidence",
    "label_origin",
    "model_version",
    "sha256",
)
SUFFIX = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
DEFAULT_VAL_PERCENT = 20


def split_for(sha256: str, val_percent: int) -> str:
    """'val' for a fixed slice of images (by their bytes' sha256), 'train' for the rest."""
    return "val" if int(sha256[:8], 16) % 100 < val_percent else "train"


class Command(BaseCommand):
    help = (
        "Write reviewed (and, with COLLECT_CONFIDENT, confidently scored) images of the "
        "sources in HUMANMADE['EXPORT_FIELDS'] as a labelled dataset: files plus "
        "manifest.csv in the training data's format, for `humanmade train --add`."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("out", help="Output folder (created if needed).")
        parser.add_argument(
            "--val-percent",
            type=int,
            default=DEFAULT_VAL_PERCENT,
            help="Percentage of images (chosen by sha256) in the held-out 'val' split "
            f"(default: {DEFAULT_VAL_PERCENT}).",
        )
        parser.add_argument(
            "--split",
            choices=("train", "val"),
            help="Put every image in this split instead of the sha256-chosen slice.",
        )
        parser.add_argument(
            "--license",
            default="site uploads; internal use only",
            help="Value of the manifest's license column.",
        )
        parser.add_argument(
            "--source-group",
            default="humanmade-review",
            help="Prefix of source_group; the watched model (or 'api') is appended.",
        )
        parser.add_argument(
            "--since",
            help="Only decisions (and confident scores) on or after this date (YYYY-MM-DD).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List what would be written (file, label, label_origin, source, "
            "model_version); write nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from detector_core import HumanmadeError
        from detector_core.intake import IntakeLimits, decode_image

        folder = Path(options["out"])
        val_percent, forced_split = options["val_percent"], options["split"]
        dry_run = options["dry_run"]
        if not 0 <= val_percent <= 100:
            raise CommandError(f"--val-percent must be 0 to 100, not {val_percent}.", returncode=2)
        day = None
        if options["since"]:
            day = parse_date(options["since"])
            if day is None:
                raise CommandError(
                    f"--since {options['since']!r} is not a date (YYYY-MM-DD).", returncode=2
                )
        if not dry_run and folder.exists() and not folder.is_dir():
            raise CommandError(f"{folder} exists and is not a folder.", returncode=2)
        try:
            plan = plan_export(
                export_fields=humanmade_settings.EXPORT_FIELDS,
                collect_confident=bool(humanmade_settings.COLLECT_CONFIDENT),
                since=day,
            )
        except ExportRefused as exc:
            raise CommandError(str(exc)) from exc
        for warning in plan.warnings:
            self.stderr.write(self.style.WARNING(warning))

        rows: list[dict[str, Any]] = []
        written: set[str] = set()
        skipped = 0
        for candidate in plan.candidates:
            detection = candidate.detection
            try:
                data = services.read_image_bytes(detection)
                decoded = decode_image(data, IntakeLimits(max_bytes=max(1, len(data))))
            except (HumanmadeError, OSError) as exc:
                self.stderr.write(self.style.WARNING(f"Detection #{detection.pk} skipped: {exc}"))
                skipped += 1
                continue
            sha256 = hashlib.sha256(data).hexdigest()
            if detection.sha256 and sha256 != detection.sha256:
                # The label is about the bytes that were scored and seen, not these.
                self.stderr.write(
                    self.style.WARNING(
                        f"Detection #{detection.pk} skipped: its stored file changed since "
                        "it was scored."
                    )
                )
                skipped += 1
                continue
            if sha256 in written:  # the same bytes once: reviewers first, then oldest
                continue
            written.add(sha256)
            split = forced_split or split_for(sha256, val_percent)
            row = self._row(candidate, decoded, sha256, split, options)
            if dry_run:
                self.stdout.write(
                    "\t".join(
                        (
                            row["file"],
                            row["label"],
                            row["label_origin"],
                            detection.source_label(),
                            row["model_version"],
                        )
                    )
                )
            else:
                _write_image(folder / row["file"], data, sha256)
            rows.append(row)
        dropped = _no_longer_listed(folder / "manifest.csv", rows)
        if dropped:
            # Usually --since narrower than the run that wrote the folder: the new manifest
            # replaces the old one, so those images would silently stop being trained on.
            self.stderr.write(
                self.style.WARNING(
                    f"{dropped} image(s) of the previous manifest in {folder} are not in this "
                    "export (before --since, no longer allowed by EXPORT_FIELDS, or their "
                    "label or split changed); their files stay but the manifest no longer "
                    "lists them. Export into a new folder to keep both sets."
                )
            )
        if not dry_run:
            _write_manifest(folder / "manifest.csv", rows)
        self.stdout.write(self.style.SUCCESS(_summary(rows, folder, skipped, dry_run)))

    def _row(
        self, candidate: Candidate, decoded: Any, sha256: str, split: str, options: dict
    ) -> dict[str, Any]:
        detection, label = candidate.detection, candidate.label
        suffix = SUFFIX.get(decoded.format, decoded.format.lower())
        prefix = "review" if candidate.label_origin == REVIEWER else "score"
        group = (
            f"{detection.content_type.app_label}.{detection.content_type.model}"
            if detection.content_type_id
            else "api"
        )
        return {
            "file": f"images/{split}/{label}/{prefix}-{detection.pk}-{sha256[:12]}.{suffix}",
            "split": split,
            "label": label,
            "source_group": f"{options['source_group']}:{group}",
            "generator": "unknown" if label == "ai" else "",
            "content": "other",
            "width": decoded.width,
            "height": decoded.height,
            "format": decoded.format,
            "grid": "",
            "sha256_original": sha256,
            "transform": "",
            "license": options["license"],
            "origin": f"humanmade-{prefix}:detection/{detection.pk}",
            "evidence": _evidence(candidate),
            "label_origin": candidate.label_origin,
            "model_version": detection.model_version,
            "sha256": sha256,
        }


def _replace_atomically(target: Path, data: bytes) -> None:
    """Write `data` to `target` through a temporary file, so a reader never sees half of it.

    OSError (permissions, disk full, a file where a folder should be) becomes a CommandError:
    the export stops with the reason instead of a traceback.
    """
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError as exc:
        raise CommandError(f"Cannot write {target}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def _write_image(target: Path, data: bytes, sha256: str) -> None:
    """The image's bytes at `target`, unless an earlier run already wrote exactly them."""
    try:
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
            return
    except OSError:
        pass  # unreadable: write it again
    _replace_atomically(target, data)


def _no_longer_listed(manifest: Path, rows: list[dict[str, Any]]) -> int:
    """How many files the existing manifest lists that `rows` will not (0 without one)."""
    try:
        with manifest.open(newline="", encoding="utf-8-sig") as fh:
            previous = {row.get("file") for row in csv.DictReader(fh)}
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0
    return len(previous - {row["file"] for row in rows} - {None, ""})


def _write_manifest(target: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS)
    writer.writeheader()
    writer.writerows(safe_row(row) for row in rows)
    _replace_atomically(target, buffer.getvalue().encode("utf-8"))


def _evidence(candidate: Candidate) -> str:
    """Why the label is what it is; a reviewer's id at most, never a name (privacy)."""
    detection = candidate.detection
    score = (
        f"model score {detection.probability:.3f}, {detection.model_version}"
        if detection.probability is not None
        else "not scored"
    )
    if candidate.label_origin == REVIEWER:
        when = f" on {detection.reviewed_at:%Y-%m-%d}" if detection.reviewed_at else ""
        who = f" by reviewer #{detection.reviewer_id}" if detection.reviewer_id else ""
        return f"human review: {detection.get_decision_display()}{when}{who} ({score})"
    return f"confident score, not reviewed: {score} ({detection.get_band_display()})"


def _summary(rows: list[dict[str, Any]], folder: Path, skipped: int, dry_run: bool) -> str:
    def counts(column: str) -> str:
        found = Counter(row[column] for row in rows)
        return ", ".join(f"{key} {n}" for key, n in sorted(found.items())) or "none"

    head = (
        f"Dry run, nothing written: would export {len(rows)} image(s) to {folder}"
        if dry_run
        else f"Exported {len(rows)} image(s) to {folder}"
    )
    tail = f"; {skipped} skipped" if skipped else ""
    return (
        f"{head} (by label: {counts('label')}; by label_origin: {counts('label_origin')}; "
        f"by split: {counts('split')}){tail}."
    )
