"""`manage.py humanmade_hash`: give Detections scored before perceptual hashes were stored
their hash, so that a reviewer's decision on them follows near-duplicates too (the same bytes
are matched by sha256 without it). Resumable: rows that have a hash are not read again
(plain images, which get none, are read again on each run)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from cms_plugin.matching import hash_fields
from cms_plugin.models import Detection
from cms_plugin.services import read_image_bytes


class Command(BaseCommand):
    help = "Store the perceptual hash of scored images that have none (decided ones first)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--limit", type=int, help="Hash at most this many images.")

    def handle(self, *args: Any, limit: int | None, **options: Any) -> None:
        queryset = (
            Detection.objects.filter(phash__isnull=True, probability__isnull=False)
            .exclude(status=Detection.Status.STALE)
            .order_by("-reviewed_at", "pk")  # decisions matter most: they are what is shown
        )
        done, unreadable, plain = 0, 0, 0
        for detection in queryset[:limit] if limit else queryset.iterator():
            try:
                data = read_image_bytes(detection)
            except OSError as exc:
                unreadable += 1
                self.stderr.write(f"Detection #{detection.pk}: not read ({exc}); skipped.")
                continue
            fields = hash_fields(data)
            if fields["phash"] is None:
                plain += 1  # unreadable, or too plain for its hash to tell it apart
                continue
            Detection.objects.filter(pk=detection.pk).update(**fields)
            done += 1
        self.stdout.write(
            f"Hashed {done} image(s); {unreadable} could not be read; {plain} matched by "
            "their bytes only (unreadable as images, or too plain for a hash)."
        )
