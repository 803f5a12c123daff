"""{% humanmade_badge image %} and {% humanmade_panel image %} for Wagtail's admin templates."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from ...render import badge_html, panel_html
from ..views import detection_urls

register = template.Library()


@register.simple_tag
def humanmade_badge(image: Any) -> SafeString:
    return badge_html(image)


@register.simple_tag(takes_context=True)
def humanmade_panel(context: template.Context, image: Any) -> SafeString:
    request = context.get("request")
    return panel_html(image, lambda detection: detection_urls(detection, request), request=request)
