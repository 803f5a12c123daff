"""What a watched object is, seen from the review queue: its title, where to edit it, who
uploaded it.

The defaults work for any model (its `str()`, its Django admin page when it has one, no
uploader); a CMS integration (`cms_plugin.contrib.wagtail`, `cms_plugin.contrib.djangocms`)
registers a `Source` for its image models so that the queue links back to the CMS's own
screens and the uploader sees their verdicts through the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Model
from django.urls import NoReverseMatch, reverse

logger = logging.getLogger("cms_plugin")


def _django_admin_url(obj: Model) -> str | None:
    meta = obj._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return None


def _no_uploader(obj: Model) -> Any:
    return None


@dataclass(frozen=True)
class Source:
    """How to describe objects of the models `applies_to` accepts."""

    applies_to: Callable[[type[Model]], bool]
    admin_url: Callable[[Model], str | None] = _django_admin_url
    uploader: Callable[[Model], Any] = _no_uploader
    title: Callable[[Model], str] = str


DEFAULT = Source(applies_to=lambda model: True)
_registered: list[Source] = []


def register(source: Source) -> None:
    """Describe some models' objects; the latest registration that applies wins."""
    _registered.insert(0, source)


def source_for(model: type[Model]) -> Source:
    return next((s for s in _registered if s.applies_to(model)), DEFAULT)


def uploader_of(obj: Model) -> Any:
    """The user who uploaded `obj`'s file where the model records one, else None."""
    user = source_for(type(obj)).uploader(obj)
    return user if user is not None and getattr(user, "pk", None) is not None else None


def describe(obj: Model | None) -> tuple[str, str | None]:
    """(title, admin URL or None) of a watched object; ("", None) when it is gone.

    Never raises: a broken object must not break the review queue that lists it.
    """
    if obj is None:
        return "", None
    source = source_for(type(obj))
    try:
        return str(source.title(obj))[:200], source.admin_url(obj)
    except Exception:
        logger.exception("could not describe %r", obj)
        return "", None


def source_link(detection: Any, limit: int | None = None) -> str:
    """'“Title” (wagtailimages.image#3)', linked to the object's admin page where it has one;
    cut to `limit` characters (whole on hover)."""
    from django.utils.html import format_html

    from .presentation import clipped

    title, url = detection.source_description()
    label = f"“{title}” ({detection.source_label()})" if title else detection.source_label()
    if url:
        return format_html('<a href="{}">{}</a>', url, clipped(label, limit))
    return clipped(label, limit)
