"""Shared set-up for the cms_plugin tests: Django configured on the demo project's settings,
settings fixtures with the tiny test weights, and images made in code."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("django")
pytest.importorskip("rest_framework")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")

import django  # noqa: E402

django.setup()

from conftest import encode, make_image  # noqa: E402

BORDERLINE = {"human": 0.0, "ai": 1.0}  # every score lands in "uncertain": needs review
ALL_AI = {"human": 0.0, "ai": 1e-9}  # every score is "likely AI"


def humanmade_conf(weights, **overrides) -> dict:
    return {
        "WEIGHTS": str(weights),
        "MAX_UPLOAD_BYTES": 2 * 1024 * 1024,
        "WATCHED_FIELDS": ["demo_site.NewsPhoto.image"],
        "CUTOFFS": BORDERLINE,
        "IN_PROCESS": True,
        "API_SUBMIT_RATE": None,
        **overrides,
    }


def png(seed: int = 0, width: int = 96, height: int = 64) -> bytes:
    return encode(make_image(width, height, seed=seed))


def make_user(username: str, *perms: str, staff: bool = False):
    """A user with the given permission codenames, fetched afresh (no stale permission cache)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(username, password="pw-" + username * 2)
    user.is_staff = staff
    user.save()
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return get_user_model().objects.get(pk=user.pk)


def logged_in(user):  # noqa: ANN001, ANN201 - a Django user in, a test Client out
    """A Django test client logged in as `user`."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client
