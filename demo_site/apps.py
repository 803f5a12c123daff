from django.apps import AppConfig


class DemoSiteConfig(AppConfig):
    name = "demo_site"
    verbose_name = "humanmade demo site"

    def ready(self) -> None:
        from . import engine  # noqa: F401  (connects the setting_changed receiver)
