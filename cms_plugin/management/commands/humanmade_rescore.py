"""`manage.py humanmade_rescore`: score stored images again after new weights are deployed.

Takes every scored Detection whose model version is not the current model's (optionally
only those created on or after --since, at most --limit of them, oldest first) and runs the
task `cms_plugin.rescore_detection` for each: in this process when scoring runs in-process,
otherwise queued for the Celery workers. The old verdict moves to `previous_*`; reviewed
images keep their decision. Interrupted runs resume by running the command again: rows
already re-scored carry the current version and are not selected twice.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date
from tqdm import tqdm

from cms_plugin import services
from cms_plugin.conf import humanmade_settings
from cms_plugin.models import Detection, band_label


class Command(BaseCommand):
    help = (
        "Re-score stored images whose verdict came from another model version than the "
        "current weights (HUMANMADE['WEIGHTS']); resumable, reviewed decisions stay."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--since", help="Only images submitted on or after this date (YYYY-MM-DD)."
        )
        parser.add_argument("--limit", type=int, help="Re-score at most this many images.")
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be re-scored; change nothing."
        )

    def handle(self, *args: Any, since: str | None, limit: int | None, **options: Any) -> None:
        from detector_core import WeightsError

        # Stale ones were replaced or deleted: no one needs a new verdict on them.
        queryset = Detection.objects.filter(probability__isnull=False).exclude(
            status=Detection.Status.STALE
        )
        if since:
            day = parse_date(since)
            if day is None:
                raise CommandError(f"--since {since!r} is not a date (YYYY-MM-DD).", returncode=2)
            queryset = queryset.filter(created_at__date__gte=day)
        if limit is not None and limit < 1:
            raise CommandError(f"--limit must be at least 1, not {limit}.", returncode=2)
        try:
            version = services.get_detector().model_version
        except WeightsError as exc:
            raise CommandError(f"Cannot load the current model: {exc}") from exc
        queryset = queryset.exclude(model_version=version).order_by("pk")
        total = queryset.count()
        selected = queryset.values_list("pk", flat=True)
        ids = list(selected[:limit] if limit else selected)
        if options["dry_run"]:
            self._dry_run(ids, total, version)
            return
        if not services.runs_in_process():
            self._queue(ids)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Queued {len(ids)} of {total} image(s) for re-scoring with model {version} "
                    f"on queue {humanmade_settings.CELERY_QUEUE!r}."
                )
            )
            return
        outcomes: Counter[str] = Counter()
        rescored: list[int] = []
        for pk in tqdm(ids, desc="re-scoring", unit="image", file=sys.stderr, disable=None):
            outcome = services.dispatch_rescore(pk) or ""
            if outcome.startswith("failed"):
                self.stderr.write(self.style.WARNING(f"Detection #{pk}: {outcome}"))
                outcomes["failed"] += 1
            else:
                outcomes[outcome] += 1
                if outcome == "rescored":
                    rescored.append(pk)
        self._summary(rescored, outcomes, total - len(ids), version)

    def _queue(self, ids: list[int]) -> None:
        queued = 0
        try:
            for pk in ids:
                services.dispatch_rescore(pk)
                queued += 1
        except services.QueueUnavailable as exc:
            # Nothing is lost: what was queued runs, the rest is selected again next time.
            raise CommandError(
                f"Queued {queued} of {len(ids)} image(s), then the Celery broker could not "
                f"be reached ({exc}). Run the command again once it is up; images already "
                "re-scored are not selected twice."
            ) from exc

    def _dry_run(self, ids: list[int], total: int, version: str) -> None:
        rows = Detection.objects.filter(pk__in=ids).select_related("content_type").order_by("pk")
        for detection in rows:
            self.stdout.write(
                f"#{detection.pk}\t{detection.model_version}\t{detection.band}\t"
                f"{detection.source_label()}"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Dry run, nothing changed: would re-score {len(ids)} of {total} image(s) "
                f"with model {version}."
            )
        )

    def _summary(self, rescored: list[int], outcomes: Counter, left: int, version: str) -> None:
        changes = Counter(
            (previous, band)
            for previous, band in Detection.objects.filter(pk__in=rescored).values_list(
                "previous_band", "band"
            )
            if previous != band
        )
        parts = [f"Re-scored {outcomes['rescored']} image(s) with model {version}"]
        parts.append(f"{sum(changes.values())} changed band")
        if outcomes["already_current"]:
            parts.append(f"{outcomes['already_current']} already current")
        parts.append(f"{outcomes['failed']} failed (old verdict kept)")
        if left:
            parts.append(f"{left} left for the next run")
        self.stdout.write(self.style.SUCCESS("; ".join(parts) + "."))
        if changes:
            self.stdout.write("Band changes (old → new):")
            for (previous, band), n in sorted(changes.items(), key=lambda item: -item[1]):
                self.stdout.write(f"  {band_label(previous)} → {band_label(band)}: {n}")
