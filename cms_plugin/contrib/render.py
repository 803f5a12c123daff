"""Badge and verdict panel as HTML, for template tags and admin fields; a broken Detection
or object shows nothing rather than breaking the CMS page around it."""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import Model
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from .verdicts import badge, latest_detection, panel_context

logger = logging.getLogger("cms_plugin")


def badge_html(obj: Model | None) -> SafeString:
    try:
        return mark_safe(
            render_to_string("humanmade/badge.html", {"badge": badge(latest_detection(obj))})
        )
    except Exception:
        logger.exception("humanmade badge for %r", obj)
        return mark_safe("")


def panel_html(obj: Model | None, urls: Any, request: Any = None) -> SafeString:
    """The verdict panel of `obj`; `urls(detection)` gives thumbnail_url, heatmap_url and
    review_url (None where the viewer may not decide) for its Detection."""
    try:
        detection = latest_detection(obj)
        context = panel_context(detection)
        if detection is not None:
            context.update(urls(detection))
        return mark_safe(render_to_string("humanmade/panel.html", context, request=request))
    except Exception:
        logger.exception("humanmade verdict panel for %r", obj)
        return mark_safe("")
