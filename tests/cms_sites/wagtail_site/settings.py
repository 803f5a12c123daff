"""A small Wagtail 8 site with humanmade added as the README says."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "wagtail-test-site-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "cms_plugin.contrib.wagtail",  # before wagtail.images: it adds to Wagtail's templates
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "cms_plugin",
    "wagtail_site.newsroom",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "wagtail_site.urls"
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
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("HUMANMADE_WAGTAIL_TEST_DB", str(BASE_DIR / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
# A fresh folder per run, never the clone (the tests point MEDIA_ROOT elsewhere, too).
_FILES = os.environ.get("HUMANMADE_TEST_FILES") or tempfile.mkdtemp(prefix="humanmade-cms-")
MEDIA_ROOT = os.path.join(_FILES, "media")
WAGTAIL_SITE_NAME = "newsroom"
WAGTAILADMIN_BASE_URL = "http://localhost"
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
WAGTAILIMAGES_IMAGE_FORM_BASE = "cms_plugin.contrib.wagtail.forms.ImageForm"
WAGTAILIMAGES_IMAGE_MODEL = os.environ.get("HUMANMADE_TEST_IMAGE_MODEL", "wagtailimages.Image")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test logins

_image_app, _image_model = WAGTAILIMAGES_IMAGE_MODEL.split(".")
HUMANMADE = {
    "WATCHED_FIELDS": [f"{_image_app}.{_image_model}.file"],
    "WEIGHTS": os.environ.get("HUMANMADE_WEIGHTS"),
    "IN_PROCESS": True,
    "API_SUBMIT_RATE": None,
}
