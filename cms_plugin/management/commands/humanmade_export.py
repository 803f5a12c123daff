"""`manage.py humanmade_export OUT`: reviewed images as a labelled dataset for the next model.

Writes `OUT/images/<split>/<label>/<file>` (the original bytes, unchanged) and
`OUT/manifest.csv` with the training manifest's columns (see the shared datasets README):
label `ai` for "AI-generated" decisions and `human` for "human-made" ones. Running it
again adds new decisions and rewrites the manifest; files already written are kept.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date

from cms_plugin import services
from cms_plugin.models import Detection

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
)
LABELS = {Detection.Decision.AI_GENERATED: "ai", Detection.Decision.HUMAN_MADE: "human"}
SUFFIX = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


class Command(BaseCommand):
    help = (
        "Write every reviewed image as a labelled dataset: files plus manifest.csv in the "
        "training data's format, so that reviewers' decisions feed the next model."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("out", help="Output folder (created if needed).")
        parser.add_argument(
            "--split",
            default="train",
            choices=("train", "val"),
            help="Value of the manifest's split column (default: train).",
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
        parser.add_argument("--since", help="Only decisions on or after this date (YYYY-MM-DD).")

    def handle(self, *args, out: str, split: str, license: str, source_group: str, since, **kw):
        from detector_core import HumanmadeError
        from detector_core.intake import IntakeLimits, decode_image

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        queryset = Detection.objects.filter(
            status=Detection.Status.REVIEWED, decision__in=list(LABELS)
        ).order_by("pk")
        if since:
            day = parse_date(since)
            if day is None:
                raise CommandError(f"--since {since!r} is not a date (YYYY-MM-DD).")
            queryset = queryset.filter(reviewed_at__date__gte=day)
        rows, seen, skipped = [], set(), 0
        for detection in queryset.select_related("content_type"):
            try:
                data = services.read_image_bytes(detection)
                decoded = decode_image(data, IntakeLimits(max_bytes=max(1, len(data))))
            except (HumanmadeError, OSError) as exc:
                self.stderr.write(f"Detection #{detection.pk} skipped: {exc}")
                skipped += 1
                continue

            sha256 = hashlib.sha256(data).hexdigest()
            if sha256 in seen:  # the same bytes once, with the first decision
                continue
            seen.add(sha256)
            label = LABELS[detection.decision]
            suffix = SUFFIX.get(decoded.format, decoded.format.lower())
            relative = f"images/{split}/{label}/review-{detection.pk}-{sha256[:12]}.{suffix}"
            target = folder / relative
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            group = (
                f"{detection.content_type.app_label}.{detection.content_type.model}"
                if detection.content_type_id
                else "api"
            )
            rows.append(
                {
                    "file": relative,
                    "split": split,
                    "label": label,
                    "source_group": f"{source_group}:{group}",
                    "generator": "unknown" if label == "ai" else "",
                    "content": "other",
                    "width": decoded.width,
                    "height": decoded.height,
                    "format": decoded.format,
                    "grid": "",
                    "sha256_original": sha256,
                    "transform": "",
                    "license": license,
                    "origin": f"humanmade-review:detection/{detection.pk}",
                    "evidence": (
                        f"human review: {detection.get_decision_display()} on "
                        f"{detection.reviewed_at:%Y-%m-%d} by reviewer #{detection.reviewer_id}"
                        f" (model score {detection.probability:.3f}, {detection.model_version})"
                        if detection.probability is not None
                        else f"human review: {detection.get_decision_display()}"
                    ),
                }
            )
        with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        self.stdout.write(
            self.style.SUCCESS(
                f"Exported {len(rows)} reviewed image(s) to {folder}"
                + (f"; {skipped} skipped" if skipped else "")
                + "."
            )
        )
