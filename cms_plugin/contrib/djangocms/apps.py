from django.apps import AppConfig


class HumanmadeDjangoCMSConfig(AppConfig):
    name = "cms_plugin.contrib.djangocms"
    label = "humanmade_djangocms"
    verbose_name = "humanmade for django CMS (django-filer)"

    def ready(self) -> None:
        from filer.models import File

        from ... import sources

        sources.register(
            sources.Source(
                applies_to=lambda model: issubclass(model, File),
                uploader=lambda file: file.owner,
                title=lambda file: file.label,
            )
        )
