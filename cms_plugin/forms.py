"""Form fields for sites whose uploads humanmade scores.

`WatchedImageField` is Django's `forms.ImageField` that, where Django refuses a file as "not
an image or a corrupted image", says why in the words the checking desk uses (the intake's):
a 30000×30000 PNG is a valid image over the pixel limit, not a corrupted one. Use it for a
watched model's image field in its admin:

    formfield_overrides = {models.ImageField: {"form_class": WatchedImageField}}
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from .conf import humanmade_settings


def intake_reason(upload: Any) -> str | None:
    """Why the scorer's intake refuses this upload, in words for people; None if it accepts
    it (or it cannot be read: Django's own message then stands)."""
    from detector_core.errors import HumanmadeError
    from detector_core.intake import IntakeLimits, decode_image, read_bytes

    limits = IntakeLimits(max_bytes=int(humanmade_settings.MAX_UPLOAD_BYTES))
    try:
        if hasattr(upload, "seek"):
            upload.seek(0)
        decode_image(read_bytes(upload, limits), limits)
    except HumanmadeError as exc:
        return str(exc)
    except (OSError, ValueError, TypeError):
        return None
    finally:
        if hasattr(upload, "seek"):
            upload.seek(0)
    return None


class WatchedImageField(forms.ImageField):
    def to_python(self, data: Any) -> Any:
        try:
            return super().to_python(data)
        except ValidationError as error:
            if data is None or error.code != "invalid_image":
                raise
            reason = intake_reason(data)
            if reason is None:
                raise
            raise ValidationError(reason, code="invalid_image") from error
