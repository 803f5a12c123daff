"""The domain functions that views, the admin, commands and custom code call, in one place.

They live in modules of their own, which import one way: `conf` and `models` at the bottom,
then `engine` (the Detector), `storage` (an image's stored bytes), `scoring`, `queueing`
(the broker and the sweeper), `uploads` and `reviews`; `tasks`, views, the admin and this
module at the top. Nothing in the app imports this module, so it cannot close a circle.
"""

from __future__ import annotations

from .engine import forget_detector, get_detector
from .queueing import (
    QueueUnavailable,
    SweepReport,
    dispatch,
    dispatch_rescore,
    enqueue,
    runs_in_process,
    sweep_stuck,
)
from .reviews import ReviewRefused, record_review
from .scoring import (
    TransientError,
    gave_up_message,
    mark_failed,
    rescore_detection,
    run_detection,
    status_for_band,
)
from .storage import read_image_bytes
from .uploads import queue_field, retire, retire_object, score_upload, submit_url

__all__ = [
    "QueueUnavailable",
    "ReviewRefused",
    "SweepReport",
    "TransientError",
    "dispatch",
    "dispatch_rescore",
    "enqueue",
    "forget_detector",
    "gave_up_message",
    "get_detector",
    "mark_failed",
    "queue_field",
    "read_image_bytes",
    "record_review",
    "rescore_detection",
    "retire",
    "retire_object",
    "run_detection",
    "runs_in_process",
    "score_upload",
    "status_for_band",
    "submit_url",
    "sweep_stuck",
]
