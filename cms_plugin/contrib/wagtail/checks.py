"""`manage.py check` for the Wagtail integration: app order, image form, watched image model."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from ...conf import humanmade_settings

APP = "cms_plugin.contrib.wagtail"
FORM = "cms_plugin.contrib.wagtail.forms.ImageForm"


@checks.register()
def check_wagtail_setup(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from wagtail.images import get_image_model

    found: list[checks.CheckMessage] = []
    installed = list(settings.INSTALLED_APPS)
    if "wagtail.images" in installed and installed.index(APP) > installed.index("wagtail.images"):
        found.append(
            checks.Error(
                f"{APP} must come before wagtail.images in INSTALLED_APPS.",
                hint="Its templates add the verdict to Wagtail's image screens, and Django "
                "uses the first app's template of a name.",
                id="humanmade_wagtail.E001",
            )
        )
    form_base = getattr(settings, "WAGTAILIMAGES_IMAGE_FORM_BASE", "")
    if not form_base:
        found.append(
            checks.Warning(
                "Wagtail's image form answers a damaged (cut-off) image with a server error.",
                hint=f'Set WAGTAILIMAGES_IMAGE_FORM_BASE = "{FORM}" (or base yours on it).',
                id="humanmade_wagtail.W002",
            )
        )
    image_model = get_image_model()
    entry = f"{image_model._meta.app_label}.{image_model.__name__}.file"
    watched = humanmade_settings.WATCHED_FIELDS
    if isinstance(watched, list | tuple) and entry not in watched:
        found.append(
            checks.Warning(
                "Wagtail's image model's file is not watched: uploads are not scored.",
                hint=f'Add "{entry}" to HUMANMADE["WATCHED_FIELDS"].',
                id="humanmade_wagtail.W001",
            )
        )
    return found
