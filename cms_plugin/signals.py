"""Upload hooks: a new or changed file in a watched field queues a Detection after commit;
deleting a watched object takes its undecided Detections out of the queue."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.apps import apps
from django.db.models.signals import post_delete, post_save

from . import uploads
from .conf import humanmade_settings

_connected: dict[type, list[str]] = {}


def parse_watched(entry: str) -> tuple[str, str, str]:
    """'app_label.Model.field' -> its three parts; ValueError when malformed."""
    parts = entry.split(".") if isinstance(entry, str) else []
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{entry!r} is not of the form 'app_label.Model.field'")
    return parts[0], parts[1], parts[2]


def connect_watched_fields() -> None:
    """(Re)connect post_save for every watched model; called from AppConfig.ready()."""
    for model in list(_connected):
        post_save.disconnect(sender=model, dispatch_uid=_uid(model))
        post_delete.disconnect(sender=model, dispatch_uid=_uid(model))
    _connected.clear()
    fields: dict[type, list[str]] = defaultdict(list)
    for entry in humanmade_settings.WATCHED_FIELDS:
        try:
            app_label, model_name, field_name = parse_watched(entry)
            model = apps.get_model(app_label, model_name)
        except (ValueError, LookupError):
            continue  # checks.py reports it
        fields[model].append(field_name)
    for model, names in fields.items():
        _connected[model] = names
        post_save.connect(_on_save, sender=model, dispatch_uid=_uid(model), weak=False)
        post_delete.connect(_on_delete, sender=model, dispatch_uid=_uid(model), weak=False)


def _uid(model: type) -> str:
    return f"cms_plugin.watch.{model._meta.label_lower}"


def _on_save(sender: type, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw:  # loaddata: the fixture's files are not uploads
        return
    for field_name in _connected.get(sender, ()):
        uploads.queue_field(instance, field_name)


def _on_delete(sender: type, instance: Any, **kwargs: Any) -> None:
    uploads.retire_object(instance)
