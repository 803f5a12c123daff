"""Queueing: send a Detection's scoring to the Celery broker (or run it in-process), and the
sweeper that queues again what a dead worker or an unreachable broker left unscored.

The tasks are named, not imported: `tasks` (above) imports this module, never the reverse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
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
    """Queue (or, in-process, run) the scoring; False when the broker cannot be reached.

    `queued_at` records when the message was published; when publishing fails the row is
    left exactly as it was (it keeps its age), for the sweeper.
    """
    return _publish(detection_id) is not False


def _publish(detection_id: int, was: dict[str, Any] | None = None) -> bool | None:
    """Claim the row (`queued_at`), send its scoring, give the claim back if sending fails.

    `was`: the row's `queued_at` and `updated_at` as the sweeper read them; the claim then
    holds only while the row is unchanged and unfinished, and None means that someone else
    (a worker, another sweep) moved it meanwhile: nothing is sent.
    """
    rows = Detection.objects.filter(pk=detection_id)
    if was is None:
        previous = rows.values_list("queued_at", flat=True).first()
    else:
        previous = was["queued_at"]
        rows = rows.filter(status__in=UNFINISHED, queued_at=previous, updated_at=was["updated_at"])
    # Stamped before sending: a worker that starts at once moves updated_at past it.
    stamp = timezone.now()
    if not rows.update(queued_at=stamp) and was is not None:
        return None
    try:
        _send(SCORE_TASK, detection_id)
    except QueueUnavailable as exc:
        # The row is stored and stays pending, as old as it was: the sweeper queues it once
        # the broker is back.
        Detection.objects.filter(pk=detection_id, queued_at=stamp).update(queued_at=previous)
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


# A row whose message was never published (the broker was down) is queued by the first sweep
# after this many seconds, however long STUCK_AFTER is: no message of it can be waiting. The
# minute covers the moment between the commit and the publishing.
NEVER_QUEUED_AFTER = 60.0


def sweep_stuck(older_than: float | None = None) -> SweepReport:
    """Queue again the Detections whose scoring message is gone: left `pending` or `scoring`
    for longer than `older_than` seconds (default `HUMANMADE["STUCK_AFTER"]`) by a worker
    killed mid-task, a message the broker lost, or a broker that was down (those never
    published wait only `NEVER_QUEUED_AFTER`). A row started `TASK_MAX_ATTEMPTS` times
    fails with a message.

    A row whose message may still wait in the queue (a backlog) is not queued again: the
    queue is first in, first out, so of the rows published since they last changed, the
    newest as many as the queue holds messages may still be in it; only older ones are
    queued again. A row is claimed only while its message is published: a sweep that cannot
    reach the broker leaves every row as it was, and stops at the first failure.
    """
    now = timezone.now()
    seconds = float(humanmade_settings.STUCK_AFTER if older_than is None else older_than)
    cutoff = now - timedelta(seconds=seconds)
    never_cutoff = now - timedelta(seconds=min(seconds, NEVER_QUEUED_AFTER))
    unfinished = Detection.objects.filter(status__in=UNFINISHED)
    published = Q(queued_at__isnull=False, queued_at__gte=F("updated_at"))
    never_queued = Q(status=Detection.Status.PENDING, queued_at__isnull=True)
    fields = ("pk", "attempts", "queued_at", "updated_at")
    lost = list(
        unfinished.exclude(published)
        .filter(Q(updated_at__lt=cutoff) | (never_queued & Q(updated_at__lt=never_cutoff)))
        .values(*fields)
    )
    report = SweepReport()
    waiting = unfinished.filter(published, queued_at__lt=cutoff)
    if waiting.exists():
        depth = queue_depth()
        if depth is None:  # the broker is away: nothing could be sent anyway
            report.not_queued.extend(waiting.values_list("pk", flat=True))
        else:
            # The oldest publishing that may still wait in the queue: the depth-th newest.
            in_queue = (
                unfinished.filter(published)
                .order_by("-queued_at")
                .values_list("queued_at", flat=True)[max(depth - 1, 0) : depth]
            )
            if depth == 0 or in_queue:
                gone = waiting if depth == 0 else waiting.filter(queued_at__lt=in_queue[0])
                lost.extend(gone.values(*fields))
    limit = int(humanmade_settings.TASK_MAX_ATTEMPTS)
    for row in sorted(lost, key=lambda row: (row["queued_at"] is not None, row["pk"])):
        pk = row["pk"]
        if row["attempts"] >= limit:
            mark_failed(pk, gave_up_message(row["attempts"]))
            report.failed.append(pk)
        elif report.not_queued:  # the broker went away during this sweep: try no more
            report.not_queued.append(pk)
        else:
            outcome = _publish(pk, row)
            if outcome is not None:
                (report.requeued if outcome else report.not_queued).append(pk)
    return report


def queue_depth() -> int | None:
    """How many messages wait in HUMANMADE["CELERY_QUEUE"] (0 in-process); None when the
    broker cannot be reached. Messages a worker holds are not counted."""
    if runs_in_process():
        return 0
    from celery import current_app

    try:
        with current_app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            try:
                declared = conn.default_channel.queue_declare(
                    queue=humanmade_settings.CELERY_QUEUE, passive=True
                )
            except conn.channel_errors:  # no such queue (Redis drops an empty one)
                return 0
            return int(declared.message_count)
    except Exception as exc:  # as in _send: every transport's error means "not reached"
        logger.warning("the Celery broker could not be reached to count the queue: %s", exc)
        return None
