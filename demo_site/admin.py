from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import models

from cms_plugin.forms import WatchedImageField
from cms_plugin.models import Detection

from .models import NewsPhoto


@admin.register(NewsPhoto)
class NewsPhotoAdmin(admin.ModelAdmin):
    list_display = ("title", "credit", "created_at", "humanmade")
    search_fields = ("title", "credit")
    # A refused image says why as the checking desk does (e.g. over the pixel limit).
    formfield_overrides = {models.ImageField: {"form_class": WatchedImageField}}

    @admin.display(description="humanmade (advisory)")
    def humanmade(self, obj: NewsPhoto) -> str:
        detection = (
            Detection.objects.filter(
                content_type=ContentType.objects.get_for_model(NewsPhoto),
                object_id=str(obj.pk),
                field_name="image",
            )
            .order_by("-pk")
            .first()
        )
        if detection is None:
            return "–"
        if detection.decision:
            return f"{detection.get_decision_display()} (reviewed)"
        return detection.summary or detection.get_status_display()
