"""Queueing: send a Detection's scoring to the Celery broker (or run it in-process), and the
sweeper that queues again what a dead worker or an unreachable broker left unscored.

The tasks are named, not imported: `tasks` (above) imports this module, never the reverse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .conf import humanmade_settings
from .models import Detection
from .scoring import UNFINISHED, gave_up_message, mark_failed

logger = logging.getLogger("cms_plugin")

# The Celery task names (cms_plugin.tasks registers them under these).
SCORE_TASK = "cms_plugin.score_detection"
RESCORE_TASK = "cms_plugin.rescore_detection"
SWEEP_TASK = "cms_plugin.sweep_detections"


class QueueUnavailable(Exception):
    """The Celery broker could not be reached: nothing was queued."""


def runs_in_process() -> bool:
    """True when scoring runs in this process after commit instead of on a Celery worker."""
    setting = humanmade_settings.IN_PROCESS
    if setting is not None:
        return bool(setting)
    from celery import current_app

    return not current_app.conf.broker_url


def enqueue(detection: Detection) -> None:
    """Queue scoring once the current transaction commits (never for a rolled-back save).

    Afterwards `detection.queued` is True, or False when the broker could not be reached
    (the row stays `pending` and `sweep_stuck` queues it later); unset while the
    transaction is still open.
    """

    def send() -> None:
        detection.queued = dispatch(detection.pk)

    transaction.on_commit(send)


def dispatch(detection_id: int) -> bool:
    """Queue (or, in-process, run) the scoring; False when the broker cannot be reached."""
    try:
        _send(SCORE_TASK, detection_id)
    except QueueUnavailable as exc:
        # The row is stored and stays pending: the sweeper queues it once the broker is back.
        logger.warning("detection %s: not queued, left pending: %s", detection_id, exc)
        return False
    return True


def dispatch_rescore(detection_id: int) -> str | None:
    """Re-score with the current model: in-process (returns the outcome) or queued (None).

    Raises `QueueUnavailable` when the broker cannot be reached.
    """
    return _send(RESCORE_TASK, detection_id)


def _send(task_name: str, detection_id: int) -> str | None:
    from celery import current_app

    if runs_in_process():
        # The task object, registered when CmsPluginConfig.ready() imported cms_plugin.tasks.
        result = current_app.tasks[task_name].apply(args=[detection_id])
        if result.successful():
            return result.result
        return f"failed: {result.result}"
    conf = humanmade_settings
    try:
        current_app.send_task(
            task_name,
            args=[detection_id],
            queue=conf.CELERY_QUEUE,
            soft_time_limit=conf.TASK_SOFT_TIME_LIMIT,
            time_limit=conf.TASK_TIME_LIMIT,
        )
    except Exception as exc:
        # kombu and the transports raise many types for a broker that is down (kombu's
        # OperationalError, redis' ConnectionError, socket errors); all mean "not queued".
        raise QueueUnavailable(f"the Celery broker could not be reached ({exc})") from exc
    return None


# --- the sweeper --------------------------------------------------------------------------


@dataclass
class SweepReport:
    requeued: list[int] = field(default_factory=list)
    not_queued: list[int] = field(default_factory=list)  # the broker is still away
    failed: list[int] = field(default_factory=list)  # attempt limit reached


def sweep_stuck(older_than: float | None = None) -> SweepReport:
    """Queue again the Detections left `pending` or `scoring` for longer than `older_than`
    seconds (default `HUMANMADE["STUCK_AFTER"]`): a message lost with a killed worker or a
    broker that was down. A row started `TASK_MAX_ATTEMPTS` times fails with a message.

    A row that is in fact still queued gets a second message, which finds it done.
    """
    now = timezone.now()
    seconds = humanmade_settings.STUCK_AFTER if older_than is None else older_than
    cutoff = now - timedelta(seconds=float(seconds))
    limit = int(humanmade_settings.TASK_MAX_ATTEMPTS)
    report = SweepReport()
    stuck = Detection.objects.filter(status__in=UNFINISHED, updated_at__lt=cutoff).order_by("pk")
    for pk, attempts in stuck.values_list("pk", "attempts"):
        if attempts >= limit:
            mark_failed(pk, gave_up_message(attempts))
            report.failed.append(pk)
            continue
        # Claim the row (a concurrent sweep or worker may have moved it meanwhile).
        claimed = Detection.objects.filter(
            pk=pk, status__in=UNFINISHED, updated_at__lt=cutoff
        ).update(updated_at=now)
        if not claimed:
            continue
        (report.requeued if dispatch(pk) else report.not_queued).append(pk)
    return report

