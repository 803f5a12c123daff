"""`settings.HUMANMADE`, merged with documented defaults: the only place that knows the names.

    HUMANMADE = {
        # "app_label.Model.field" of FileFields/ImageFields whose uploads are scored.
        "WATCHED_FIELDS": ["newsroom.Photo.image"],
        "CUTOFFS": None,            # band cut-offs; None: those shipped with the weights
        "REVIEW_LIKELY_AI": True,   # likely_ai goes to review too (uncertain always does)
        "MAX_UPLOAD_BYTES": 20 * 1024 * 1024,     # uploads and URL downloads, videos too
        "VIDEO_LIMITS": {},         # overrides of detector_core.video.VideoLimits
        "URL_ALLOW_HOSTS": [],      # on-premise hosts/networks URLs may point at
        "CELERY_QUEUE": "humanmade",  # so that a GPU worker can take the scoring
        "WEIGHTS": None,            # None: $HUMANMADE_WEIGHTS, else the release in weights/
        # The feedback loop (manage.py humanmade_export):
        "EXPORT_FIELDS": ["newsroom.Photo.image", "api"],  # what may leave the site
        "COLLECT_CONFIDENT": False,  # also export unreviewed scores <= 0.20 or >= 0.80
    }

Read values through `humanmade_settings` (attribute access, e.g.
`humanmade_settings.CELERY_QUEUE`); it is rebuilt when a test overrides `HUMANMADE`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

SETTING_NAME = "HUMANMADE"

DEFAULTS: dict[str, Any] = {
    # Watched upload fields, "app_label.Model.field".
    "WATCHED_FIELDS": [],
    # Band cut-offs: below `human` is likely human, at or above `ai` likely AI. None: the
    # cut-offs shipped with the weights (they go with the weights' calibration).
    "CUTOFFS": None,
    # Whether likely_ai verdicts wait for a person too (uncertain ones always do).
    "REVIEW_LIKELY_AI": True,
    # Largest upload (and URL download) accepted, in bytes; videos included.
    "MAX_UPLOAD_BYTES": 20 * 1024 * 1024,
    # Videos and animated images: overrides of detector_core.video.VideoLimits fields, e.g.
    # {"frames_scored": 12, "time_limit_s": 90}. Defaults there: 1 hour sampled at most,
    # 3840×2160 per frame, 2,000 frames decoded, 8 frames scored, a 60 s and 3 GiB bound on
    # the decoding process; max_bytes is MAX_UPLOAD_BYTES unless given here.
    "VIDEO_LIMITS": {},
    # Host names, addresses or CIDR networks that URLs may point at although private.
    "URL_ALLOW_HOSTS": [],
    # Weights file; None: $HUMANMADE_WEIGHTS, else the release in weights/.
    "WEIGHTS": None,
    # Torch device for scoring: "cpu", "cuda", or "auto" (a GPU when there is one).
    "DEVICE": "cpu",
    # Compute and keep the patch heatmap shown to reviewers.
    "HEATMAP": True,
    # Celery: the queue scoring tasks go to, and their limits.
    "CELERY_QUEUE": "humanmade",
    "TASK_SOFT_TIME_LIMIT": 120,
    "TASK_TIME_LIMIT": 180,
    "TASK_MAX_RETRIES": 5,
    # A Detection whose scoring was started this many times without finishing (a worker
    # killed mid-task each time, say by an image that exhausts its memory) fails for good.
    "TASK_MAX_ATTEMPTS": 10,
    # The sweeper (`manage.py humanmade_sweep`, task `cms_plugin.sweep_detections`) queues
    # again what has been `pending` or `scoring` for longer than this, in seconds, and whose
    # message is gone (not one waiting in a backlog; one never published: after a minute).
    # Keep it above TASK_TIME_LIMIT plus the longest retry back-off (600 s).
    "STUCK_AFTER": 1800,
    # None: score in-process after commit when Celery has no broker configured, else queue.
    # True: always in-process (the demo). False: always queue (production).
    "IN_PROCESS": None,
    # Storage folder (inside MEDIA_ROOT) for API uploads and heatmap overlays.
    "UPLOAD_TO": "humanmade",
    # DRF throttle rate for submitting images, per user ("60/hour", None: unlimited).
    "API_SUBMIT_RATE": "120/hour",
    # Privacy: the sources whose images `humanmade_export` may write out, as watched fields
    # ("app_label.Model.field") plus "api" for images sent through the REST API or by URL.
    # Empty: nothing may leave the site, and the export refuses to run.
    "EXPORT_FIELDS": [],
    # Export also unreviewed, stable scores at or beyond the confident cut-offs (<= 0.20:
    # human, >= 0.80: ai) as label_origin "confident_score"; reviewers' decisions always win.
    "COLLECT_CONFIDENT": False,
    # The checking desk (/desk/ where its URLs are included): most images in one batch,
    # counting each image inside a ZIP, and most URLs pasted at once.
    "DESK_MAX_FILES": 100,
    # A reviewer's decision follows the picture: a Detection whose perceptual hash differs
    # from a decided image's in at most this many of 64 bits shows that decision (0-3: the
    # indexed lookup finds every hash within 3; None: only the same bytes). At 3, 0.13 % of
    # 4,665 distinct images were wrongly matched (figures in cms_plugin/README.md).
    "NEAR_DUPLICATE_DISTANCE": 3,
    # cms_plugin.contrib.wagtail: warn (never block) before publishing a page that uses a
    # likely-AI image no person has confirmed.
    "WAGTAIL_PUBLISH_WARNING": False,
}


class HumanmadeSettings:
    """Attribute access to the merged settings; unknown names raise AttributeError."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    @property
    def user_settings(self) -> Any:
        return getattr(settings, SETTING_NAME, {})

    def as_dict(self) -> dict[str, Any]:
        if self._cache is None:
            user = self.user_settings
            self._cache = {**DEFAULTS, **(user if isinstance(user, dict) else {})}
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown {SETTING_NAME} setting {name!r}")
        return self.as_dict()[name]

    def reload(self) -> None:
        self._cache = None


humanmade_settings = HumanmadeSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING_NAME:
        humanmade_settings.reload()


setting_changed.connect(_reload, dispatch_uid="cms_plugin.conf.reload")
