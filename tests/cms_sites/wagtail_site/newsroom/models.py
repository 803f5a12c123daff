from django.db import models
from wagtail.admin.panels import FieldPanel
from wagtail.images.models import AbstractImage, AbstractRendition, Image
from wagtail.models import Page


class ArticlePage(Page):
    hero_image = models.ForeignKey(
        Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    content_panels = [*Page.content_panels, FieldPanel("hero_image")]


class NewsImage(AbstractImage):
    """A custom image model (WAGTAILIMAGES_IMAGE_MODEL), with a credit line."""

    credit = models.CharField(max_length=200, blank=True)
    admin_form_fields = (*Image.admin_form_fields, "credit")


class NewsRendition(AbstractRendition):
    image = models.ForeignKey(NewsImage, on_delete=models.CASCADE, related_name="renditions")

    class Meta:
        unique_together = (("image", "filter_spec", "focal_point_key"),)
