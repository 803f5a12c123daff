from django.apps import AppConfig


class HumanmadeWagtailConfig(AppConfig):
    name = "cms_plugin.contrib.wagtail"
    label = "humanmade_wagtail"
    verbose_name = "humanmade for Wagtail"

    def ready(self) -> None:
        from django.urls import reverse
        from wagtail.images.models import AbstractImage

        from ... import sources
        from . import checks  # noqa: F401  (registers the system checks)

        sources.register(
            sources.Source(
                applies_to=lambda model: issubclass(model, AbstractImage),
                admin_url=lambda image: reverse("wagtailimages:edit", args=[image.pk]),
                uploader=lambda image: image.uploaded_by_user,
                title=lambda image: image.title,
            )
        )
