"""django-filer's image admin, with humanmade's verdict on each image's page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from filer import settings as filer_settings
from filer.admin.imageadmin import ImageAdmin
from filer.utils.loader import load_model

from ..render import panel_html

FIELDSET_TITLE = "AI-generation check (humanmade)"


def _admin_urls(detection: Any) -> dict[str, Any]:
    # The filer page is one form already: decisions are made on the Detection's own page.
    return {
        "heatmap_url": reverse("admin:cms_plugin_detection_heatmap", args=[detection.pk]),
        "review_url": None,
        "decide_url": reverse("admin:cms_plugin_detection_change", args=[detection.pk]),
    }


class HumanmadeImageAdmin(ImageAdmin):
    def get_fieldsets(self, request: HttpRequest, obj: Any = None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.insert(0, (FIELDSET_TITLE, {"fields": ("humanmade_verdict",)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        return (*super().get_readonly_fields(request, obj), "humanmade_verdict")

    @admin.display(description="verdict")
    def humanmade_verdict(self, obj: Any) -> str:
        return panel_html(obj, _admin_urls)


image_model = load_model(filer_settings.FILER_IMAGE_MODEL)
if admin.site.is_registered(image_model):
    admin.site.unregister(image_model)
admin.site.register(image_model, HumanmadeImageAdmin)
