"""The stored bytes of a Detection's image: its upload, a fetched URL, or a watched file."""

from __future__ import annotations

from typing import Any

from .conf import humanmade_settings
from .models import Detection


def read_image_bytes(detection: Detection) -> bytes:
    """The stored bytes of the image (upload, fetched URL or watched file); OSError if none."""
    from detector_core.intake import IntakeLimits, read_bytes

    limits = IntakeLimits(max_bytes=int(humanmade_settings.MAX_UPLOAD_BYTES))
    if detection.upload:
        with detection.upload.open("rb") as fh:
            return read_bytes(fh, limits)
    if detection.content_type_id:
        with _watched_storage(detection).open(detection.file_name, "rb") as fh:
            return read_bytes(fh, limits)
    raise FileNotFoundError("no stored image")


def _watched_storage(detection: Detection) -> Any:
    """The storage that holds a watched file: the object's own file's where the object still
    has that file (django-filer keeps each file on its public or its private storage), else
    the field's."""
    obj = detection.source_object()
    if obj is not None:
        field_file = getattr(obj, detection.field_name, None)
        if field_file and field_file.name == detection.file_name:
            return field_file.storage
    model = detection.content_type.model_class()
    if model is None:
        raise FileNotFoundError(detection.file_name)
    return model._meta.get_field(detection.field_name).storage
