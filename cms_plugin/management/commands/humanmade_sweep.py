"""`manage.py humanmade_sweep`: queue again what a dead worker or broker left unscored.

A Detection `pending` or `scoring` for longer than HUMANMADE["STUCK_AFTER"] seconds whose
message is gone lost its task: a pool child killed mid-task after the message was
acknowledged, a message the broker lost, a web process that died while scoring in-process.
One never published (the broker was down when the image came in) is queued after a minute.
One whose message may still wait in the queue (a backlog) is left there. Run this from
cron (or the periodic task `cms_plugin.sweep_detections` from Celery beat); a row started
HUMANMADE["TASK_MAX_ATTEMPTS"] times fails with a message instead.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from cms_plugin import services


class Command(BaseCommand):
    help = (
        "Queue again the detections left pending or scoring past HUMANMADE['STUCK_AFTER']; "
        "fail those started TASK_MAX_ATTEMPTS times."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="SECONDS",
            help="Take rows unchanged for this long (default: HUMANMADE['STUCK_AFTER']).",
        )

    def handle(self, *args: Any, older_than: float | None, **options: Any) -> None:
        if older_than is not None and older_than < 0:
            raise CommandError(f"--older-than must be >= 0, not {older_than:g}.", returncode=2)
        report = services.sweep_stuck(older_than)
        for pk in report.failed:
            self.stderr.write(self.style.WARNING(f"Detection #{pk}: failed, too many attempts."))
        summary = (
            f"Queued {len(report.requeued)} stuck detection(s) again; "
            f"{len(report.failed)} given up after too many attempts"
        )
        if report.not_queued:
            raise CommandError(
                f"{summary}; {len(report.not_queued)} could not be queued because the Celery "
                "broker cannot be reached (they stay pending, unchanged; the first run once it "
                "is up queues them)."
            )
        self.stdout.write(self.style.SUCCESS(summary + "."))
