"""The Celery tasks: thin, idempotent, late-acknowledged, retried with backoff.

Queue name and time limits are given per call (see `queueing.dispatch`), so they follow
`HUMANMADE`; a worker takes this queue with `celery -A <project> worker -Q humanmade`.
A pool child killed mid-task (out of memory, `kill -9`) puts its message back on the queue
(`reject_on_worker_lost`, safe because the tasks are idempotent); `scoring.run_detection`
counts the starts, so an image that kills every worker fails after TASK_MAX_ATTEMPTS.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from . import queueing, scoring
from .conf import humanmade_settings

logger = logging.getLogger("cms_plugin")

BACKOFF_BASE_S = 10
BACKOFF_MAX_S = 600


def backoff(retries: int) -> int:
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**retries)


def _retry(task: Task, detection_id: int, exc: Exception) -> str:
    """Try a transient failure again: later with backoff on a worker, at once in-process
    (no sleeping inside a web request)."""
    logger.warning("detection %s: transient failure, will retry: %s", detection_id, exc)
    if task.request.is_eager:
        return task.apply(args=[detection_id], retries=task.request.retries + 1).get()
    raise task.retry(exc=exc, countdown=backoff(task.request.retries)) from exc


@shared_task(
    bind=True,
    name=queueing.SCORE_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # counted against HUMANMADE["TASK_MAX_RETRIES"] below
    ignore_result=True,
)
def score_detection(self, detection_id: int) -> str:
    """Score Detection `detection_id`; a re-delivered message finds it done and returns."""
    try:
        return scoring.run_detection(detection_id)
    except scoring.TransientError as exc:
        if self.request.retries >= int(humanmade_settings.TASK_MAX_RETRIES):
            return scoring.mark_failed(
                detection_id, f"Scoring kept failing and was given up: {exc}"
            )
        return _retry(self, detection_id, exc)
    except SoftTimeLimitExceeded:
        return scoring.mark_failed(
            detection_id,
            "Scoring took longer than the time limit "
            f"({humanmade_settings.TASK_SOFT_TIME_LIMIT} s) and was stopped.",
        )
    except Exception:
        logger.exception("detection %s: unexpected error while scoring", detection_id)
        scoring.mark_failed(detection_id, "An internal error stopped the scoring (see logs).")
        raise


@shared_task(
    bind=True,
    name=queueing.RESCORE_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # counted against HUMANMADE["TASK_MAX_RETRIES"] below
    ignore_result=True,
)
def rescore_detection(self, detection_id: int) -> str:
    """Re-score Detection `detection_id` with the current model (`humanmade_rescore`).

    Idempotent: a re-delivered message finds it at the current version and returns. A
    failure never touches the old verdict; the next `humanmade_rescore` run tries again.
    """
    try:
        return scoring.rescore_detection(detection_id)
    except scoring.TransientError as exc:
        if self.request.retries >= int(humanmade_settings.TASK_MAX_RETRIES):
            message = f"failed: re-scoring kept failing and was given up: {exc}"
            logger.warning("detection %s: %s", detection_id, message)
            return message
        return _retry(self, detection_id, exc)
    except SoftTimeLimitExceeded:
        message = (
            "failed: re-scoring took longer than the time limit "
            f"({humanmade_settings.TASK_SOFT_TIME_LIMIT} s); the old verdict is kept"
        )
        logger.warning("detection %s: %s", detection_id, message)
        return message
    except Exception:
        logger.exception("detection %s: unexpected error while re-scoring", detection_id)
        raise


@shared_task(name=queueing.SWEEP_TASK, ignore_result=True)
def sweep_detections() -> dict[str, int]:
    """Queue again what a dead worker or broker left pending or scoring (run it from beat)."""
    report = queueing.sweep_stuck()
    counts = {name: len(ids) for name, ids in vars(report).items()}
    if any(counts.values()):
        logger.info("swept stuck detections: %s", counts)
    return counts
