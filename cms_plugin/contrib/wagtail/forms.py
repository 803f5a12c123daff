"""WAGTAILIMAGES_IMAGE_FORM_BASE = "cms_plugin.contrib.wagtail.forms.ImageForm": Wagtail's
image form, refusing a damaged file with Wagtail's own message instead of a server error."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from wagtail.images.fields import WagtailImageField
from wagtail.images.forms import BaseImageForm


class SafeImageField(WagtailImageField):
    def to_python(self, data: Any) -> Any:
        try:
            return super().to_python(data)
        except OSError as exc:
            # Wagtail 8 reads the size of a cut-off JPEG without catching Pillow's OSError
            # ("image file is truncated"), which ends the upload as a 500 page.
            raise ValidationError(
                self.error_messages["invalid_image"], code="invalid_image"
            ) from exc


class ImageForm(BaseImageForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.get("file")
        if type(field) is WagtailImageField:
            # Same field, one method more: the form keeps the field Wagtail configured.
            field.__class__ = SafeImageField
