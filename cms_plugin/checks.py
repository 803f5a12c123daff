"""`manage.py check` (and every start-up) reports a bad HUMANMADE setting before it bites."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from .conf import DEFAULTS, SETTING_NAME, humanmade_settings

ID = "cms_plugin"


def _error(msg: str, n: int, hint: str | None = None) -> checks.Error:
    return checks.Error(msg, hint=hint, id=f"{ID}.E{n:03d}")


def _warning(msg: str, n: int, hint: str | None = None) -> checks.Warning:
    return checks.Warning(msg, hint=hint, id=f"{ID}.W{n:03d}")


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    user = getattr(settings, SETTING_NAME, {})
    if not isinstance(user, dict):
        return [_error(f"{SETTING_NAME} must be a dict, not {type(user).__name__}.", 1)]
    found: list[checks.CheckMessage] = []
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        found.append(
            _warning(
                f"{SETTING_NAME} has unknown keys: {', '.join(unknown)}.",
                1,
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
            )
        )
    conf = humanmade_settings.as_dict()
    found += _check_watched(conf["WATCHED_FIELDS"])
    found += _check_cutoffs(conf["CUTOFFS"])
    for key in (
        "MAX_UPLOAD_BYTES",
        "TASK_SOFT_TIME_LIMIT",
        "TASK_TIME_LIMIT",
        "TASK_MAX_ATTEMPTS",
        "STUCK_AFTER",
    ):
        value = conf[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            found.append(_error(f"{SETTING_NAME}['{key}'] must be a positive integer.", 4))
    if not isinstance(conf["TASK_MAX_RETRIES"], int) or conf["TASK_MAX_RETRIES"] < 0:
        found.append(_error(f"{SETTING_NAME}['TASK_MAX_RETRIES'] must be an integer >= 0.", 4))
    for key in ("REVIEW_LIKELY_AI", "HEATMAP", "COLLECT_CONFIDENT", "WAGTAIL_PUBLISH_WARNING"):
        if not isinstance(conf[key], bool):
            found.append(_error(f"{SETTING_NAME}['{key}'] must be True or False.", 5))
    if conf["IN_PROCESS"] not in (None, True, False):
        found.append(_error(f"{SETTING_NAME}['IN_PROCESS'] must be None, True or False.", 5))
    found += _check_video_limits(conf["VIDEO_LIMITS"])
    found += _check_allow_hosts(conf["URL_ALLOW_HOSTS"])
    queue = conf["CELERY_QUEUE"]
    if not isinstance(queue, str) or not queue.strip():
        found.append(_error(f"{SETTING_NAME}['CELERY_QUEUE'] must be a non-empty string.", 7))
    found += _check_weights(conf["WEIGHTS"])
    found += _check_export_fields(conf["EXPORT_FIELDS"], conf["WATCHED_FIELDS"])
    found += _check_broker(conf["IN_PROCESS"])
    found += _check_recovery(conf)
    return found


def _check_watched(entries: Any) -> list[checks.CheckMessage]:
    from .signals import parse_watched

    if not isinstance(entries, list | tuple):
        return [_error(f"{SETTING_NAME}['WATCHED_FIELDS'] must be a list of strings.", 2)]
    found: list[checks.CheckMessage] = []
    for entry in entries:
        try:
            app_label, model_name, field_name = parse_watched(entry)
        except ValueError as exc:
            found.append(_error(f"WATCHED_FIELDS: {exc}.", 2))
            continue
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            found.append(_error(f"WATCHED_FIELDS: no model {app_label}.{model_name}.", 2))
            continue
        try:
            field = model._meta.get_field(field_name)
        except Exception:
            found.append(_error(f"WATCHED_FIELDS: {model.__name__} has no field {field_name}.", 2))
            continue
        if not isinstance(field, models.FileField):
            found.append(_error(f"WATCHED_FIELDS: {entry} is not a FileField or ImageField.", 2))
    return found


def _check_video_limits(value: Any) -> list[checks.CheckMessage]:
    from detector_core.video import VideoLimits

    try:
        if not isinstance(value, dict):
            raise TypeError(f"a dict is needed, not {type(value).__name__}")
        VideoLimits(**value)
    except (TypeError, ValueError) as exc:
        fields = ", ".join(VideoLimits.__dataclass_fields__)
        return [
            _error(
                f"{SETTING_NAME}['VIDEO_LIMITS'] is invalid: {exc}.",
                11,
                hint=f"A dict with any of {fields}, each positive.",
            )
        ]
    return []


def _check_cutoffs(value: Any) -> list[checks.CheckMessage]:
    from detector_core import BandCutoffs

    if value is None:  # the cut-offs shipped with the weights
        return []
    try:
        BandCutoffs(**value)
    except (TypeError, ValueError) as exc:
        return [
            _error(
                f"{SETTING_NAME}['CUTOFFS'] is invalid: {exc}.",
                3,
                hint='Use None (the weights\' cut-offs) or {"human": 0.20, "ai": 0.80} '
                "with 0 <= human < ai <= 1.",
            )
        ]
    return []


def _check_export_fields(entries: Any, watched: Any) -> list[checks.CheckMessage]:
    from .export import API_SOURCE
    from .signals import parse_watched

    if isinstance(entries, str) or not isinstance(entries, list | tuple):
        return [
            _error(
                f"{SETTING_NAME}['EXPORT_FIELDS'] must be a list of strings.",
                10,
                hint='e.g. ["newsroom.Photo.image", "api"]; "api" covers API and URL uploads.',
            )
        ]
    watched_set = set(watched) if isinstance(watched, list | tuple) else set()
    found: list[checks.CheckMessage] = []
    for entry in entries:
        if entry == API_SOURCE:
            continue
        try:
            app_label, model_name, field_name = parse_watched(entry)
            apps.get_model(app_label, model_name)._meta.get_field(field_name)
        except ValueError as exc:
            found.append(_error(f"EXPORT_FIELDS: {exc} (nor the token {API_SOURCE!r}).", 10))
            continue
        except (LookupError, FieldDoesNotExist):
            found.append(_error(f"EXPORT_FIELDS: no field {entry}.", 10))
            continue
        if entry not in watched_set:
            found.append(
                _warning(
                    f"EXPORT_FIELDS names {entry}, which is not in WATCHED_FIELDS.",
                    3,
                    hint="Only watched fields are scored; check the spelling, or add it to "
                    "WATCHED_FIELDS.",
                )
            )
    return found


def _check_allow_hosts(value: Any) -> list[checks.CheckMessage]:
    from detector_core.fetch import FetchPolicy

    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        return [_error(f"{SETTING_NAME}['URL_ALLOW_HOSTS'] must be a list of host names.", 6)]
    try:
        FetchPolicy(allow_hosts=frozenset(value))
    except (TypeError, ValueError, AttributeError) as exc:
        return [_error(f"{SETTING_NAME}['URL_ALLOW_HOSTS'] is invalid: {exc}.", 6)]
    return []


def _check_weights(value: Any) -> list[checks.CheckMessage]:
    from detector_core import Detector

    try:
        path = Detector(value).weights_path  # loads nothing
    except TypeError:
        return [_error(f"{SETTING_NAME}['WEIGHTS'] must be a path or None.", 9)]
    if not path.is_file():
        return [
            _warning(
                f"The model weights {path} do not exist; every scoring will fail.",
                2,
                hint="Set HUMANMADE['WEIGHTS'] or $HUMANMADE_WEIGHTS to a released file.",
            )
        ]
    return []


def _check_broker(in_process: Any) -> list[checks.CheckMessage]:
    if in_process is not False:
        return []
    from celery import current_app

    if not current_app.conf.broker_url:
        return [
            _error(
                "HUMANMADE['IN_PROCESS'] is False but Celery has no broker configured.",
                8,
                hint="Set CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0), or IN_PROCESS None.",
            )
        ]
    return []


# Brokers that hand an unacknowledged message to another worker after a visibility timeout.
_VISIBILITY_TIMEOUT_SCHEMES = ("redis", "rediss", "sentinel", "sqs")
_CELERY_DEFAULT_VISIBILITY_TIMEOUT = 3600


def _check_recovery(conf: dict[str, Any]) -> list[checks.CheckMessage]:
    """Timings that decide how soon, and whether cleanly, a lost task comes back."""
    from .tasks import BACKOFF_MAX_S

    numbers = (conf["TASK_TIME_LIMIT"], conf["STUCK_AFTER"], conf["TASK_MAX_ATTEMPTS"])
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        return []  # reported above
    time_limit, stuck_after, max_attempts = numbers
    longest_wait = time_limit + BACKOFF_MAX_S  # a task retried after the longest back-off
    found: list[checks.CheckMessage] = []
    retries = conf["TASK_MAX_RETRIES"]
    if isinstance(retries, int) and max_attempts <= retries:
        found.append(
            _warning(
                f"{SETTING_NAME}['TASK_MAX_ATTEMPTS'] ({max_attempts}) is not above "
                f"TASK_MAX_RETRIES ({retries}): retries are cut short.",
                4,
            )
        )
    if stuck_after <= longest_wait:
        found.append(
            _warning(
                f"{SETTING_NAME}['STUCK_AFTER'] ({stuck_after} s) is not above TASK_TIME_LIMIT "
                f"plus the longest retry back-off ({longest_wait} s): the sweeper would queue "
                "tasks that are only waiting for their retry.",
                5,
            )
        )
    if conf["IN_PROCESS"] is True:
        return found
    from celery import current_app

    broker = str(current_app.conf.broker_url or "")
    if broker.split(":", 1)[0].lower() not in _VISIBILITY_TIMEOUT_SCHEMES:
        return found
    options = current_app.conf.broker_transport_options or {}
    timeout = options.get("visibility_timeout")
    hint = (
        f'Set CELERY_BROKER_TRANSPORT_OPTIONS = {{"visibility_timeout": {longest_wait + 120}}}'
        " (seconds): longer than the task time limit plus the longest retry back-off, short "
        "enough that a task of a killed worker comes back soon."
    )
    if timeout is None:
        found.append(
            _warning(
                "The broker's visibility timeout is Celery's default of "
                f"{_CELERY_DEFAULT_VISIBILITY_TIMEOUT} s: a task whose worker was killed "
                "(--pool=solo) waits an hour before another worker gets it.",
                6,
                hint=hint,
            )
        )
    elif not isinstance(timeout, int | float) or timeout <= longest_wait:
        found.append(
            _warning(
                f"The broker's visibility timeout ({timeout!r} s) is not longer than "
                f"TASK_TIME_LIMIT plus the longest retry back-off ({longest_wait} s): a "
                "running or waiting task would be handed to a second worker.",
                7,
                hint=hint,
            )
        )
    return found


@checks.register(checks.Tags.urls)
def check_api_reachable(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The API's URLs must come before a CMS's catch-all page route, which would take them."""
    from django.urls import NoReverseMatch, Resolver404, resolve, reverse

    try:
        path = reverse("cms_plugin_api:detection-list")
    except NoReverseMatch:
        return []  # the API is not mounted: nothing to check
    try:
        match = resolve(path)
    except Resolver404:
        match = None
    if match is not None and "cms_plugin_api" in match.namespaces:
        return []
    taken_by = (match.view_name or match.route) if match is not None else "nothing"
    return [
        _error(
            f"{path} does not reach the humanmade API: {taken_by!r} comes first and takes it.",
            11,
            hint='Put path("api/", include("cms_plugin.api.urls")) above the CMS\'s catch-all '
            'route (Wagtail\'s include(wagtail_urls), django CMS\'s include("cms.urls")).',
        )
    ]
