"""Settings for the humanmade demo site.

Everything is embedded so that `python manage.py demo` works on a fresh clone: an SQLite
file, no broker, no cache server. Environment variables:

- HUMANMADE_DEMO_DB          SQLite file (default: <repo>/db.sqlite3)
- HUMANMADE_DEMO_SECRET_KEY  Django secret key (default: an INSECURE development key)
- HUMANMADE_DEMO_DEBUG       1/0, true/false (default: true; this is a demo)
- HUMANMADE_WEIGHTS          weights file used when HUMANMADE["WEIGHTS"] is None
- HUMANMADE_DEMO_DATABASE_URL  postgres://user:password@host:port/name instead of SQLite
- HUMANMADE_DEMO_MEDIA_ROOT  where uploads are stored (default: <repo>/media)
- HUMANMADE_CELERY_QUEUE     the queue scoring tasks go to (default: humanmade)
- HUMANMADE_CELERY_BROKER_URL  a broker (e.g. redis://127.0.0.1:6379/0): scoring is queued
                             for a Celery worker instead of running in-process after commit
- HUMANMADE_CELERY_VISIBILITY_TIMEOUT  seconds before Redis hands a task whose worker died
                             to another worker (default 900)
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


# !!! INSECURE development default: fine for the demo on your own machine, never for a site
# anyone else can reach. Set HUMANMADE_DEMO_SECRET_KEY to a long random value there.
INSECURE_DEV_SECRET_KEY = "django-insecure-humanmade-demo-only-do-not-deploy"
SECRET_KEY = os.environ.get("HUMANMADE_DEMO_SECRET_KEY") or INSECURE_DEV_SECRET_KEY

DEBUG = _env_bool("HUMANMADE_DEMO_DEBUG", True)
if not DEBUG and SECRET_KEY == INSECURE_DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "DEBUG is off but SECRET_KEY is the insecure demo default; set HUMANMADE_DEMO_SECRET_KEY."
    )

ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from here, never from a CDN
    "cms_plugin",
    "demo_site",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url: str) -> dict:
    """postgres://user:password@host:port/name -> a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured("HUMANMADE_DEMO_DATABASE_URL must be a postgres:// URL.")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {
    "default": (
        _database(os.environ["HUMANMADE_DEMO_DATABASE_URL"])
        if os.environ.get("HUMANMADE_DEMO_DATABASE_URL")
        else {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("HUMANMADE_DEMO_DB") or BASE_DIR / "db.sqlite3",
        }
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The checking desk (/desk/) is for staff: they sign in where the admin does.
LOGIN_URL = "admin:login"
MEDIA_URL = "media/"
MEDIA_ROOT = os.environ.get("HUMANMADE_DEMO_MEDIA_ROOT") or BASE_DIR / "media"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Uploads: the first handler refuses a file as soon as it grows past MAX_UPLOAD_BYTES, so an
# oversized upload is never held whole (small files stay in memory, bigger ones go to a
# temporary file until the limit).
FILE_UPLOAD_HANDLERS = [
    "demo_site.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
CSRF_FAILURE_VIEW = "demo_site.views.csrf_failure"

# The detector and cms_plugin (every key and its default: cms_plugin/conf.py). WEIGHTS: a
# .safetensors path, or None for $HUMANMADE_WEIGHTS / the release in weights/.
# MAX_UPLOAD_BYTES caps both uploads and URL downloads.
HUMANMADE = {
    "WEIGHTS": None,
    "MAX_UPLOAD_BYTES": 20 * 1024 * 1024,
    "WATCHED_FIELDS": ["demo_site.NewsPhoto.image"],
    # The demo's own uploads may be exported for retraining (manage.py humanmade_export).
    "EXPORT_FIELDS": ["demo_site.NewsPhoto.image", "api"],
    "CELERY_QUEUE": os.environ.get("HUMANMADE_CELERY_QUEUE") or "humanmade",
}

# Celery: no broker by default, so scoring runs in-process after commit.
CELERY_BROKER_URL = os.environ.get("HUMANMADE_CELERY_BROKER_URL") or None
# Anything sent without a queue (a retry, a task of another app) goes to the humanmade queue
# too, never to Celery's shared default "celery" that any other worker may consume.
CELERY_TASK_DEFAULT_QUEUE = HUMANMADE["CELERY_QUEUE"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # a killed pool child's task goes back on the queue
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# KiB: a pool child whose memory passed ~1.9 GiB is replaced once its task is done (the model
# takes ~1 GiB, a 64 MP image ~1.6 GiB more while it is scored; README "In production").
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 2_000_000
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis hands an unacknowledged task to another worker after this many seconds: longer than
# the task time limit plus the longest retry back-off (180 + 600 s), far below the 1 h default.
# kombu (5.7) looks for such tasks every 10 s but, by default, scans only every 10th time:
# a throttle of 1 scans each time (one cheap Redis query), so a dead worker's task comes
# back within 10 s of its timeout rather than 100 s.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("HUMANMADE_CELERY_VISIBILITY_TIMEOUT") or 900),
    "unacked_restore_throttle": 1,
}
# Celery beat (`celery -A demo_site beat`) runs the sweeper; `manage.py humanmade_sweep` from
# cron does the same.
CELERY_BEAT_SCHEDULE = {
    "humanmade-sweep": {
        "task": "cms_plugin.sweep_detections",
        "schedule": 300.0,
        "options": {"queue": HUMANMADE["CELERY_QUEUE"]},
    },
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "humanmade API",
    "DESCRIPTION": "Submit images for an advisory AI-generation score; reviewers decide.",
    "VERSION": "0.1.0",
    # `band` and `previous_band` share one set of choices: one enum in the schema.
    "ENUM_NAME_OVERRIDES": {"BandEnum": "cms_plugin.models.Detection.Band"},
    # The browsable schema's JavaScript and CSS come from drf-spectacular-sidecar's static
    # files: on-premise sites are often offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
