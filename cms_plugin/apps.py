from django.apps import AppConfig


class CmsPluginConfig(AppConfig):
    name = "cms_plugin"
    label = "cms_plugin"
    verbose_name = "humanmade review"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from . import checks, engine, signals, tasks  # noqa: F401  (checks, Celery tasks)

        signals.connect_watched_fields()

        def rewire(*, setting: str, **kwargs) -> None:
            if setting == "HUMANMADE":
                signals.connect_watched_fields()
                engine.forget_detector()  # built from the old HUMANMADE

        setting_changed.connect(rewire, weak=False, dispatch_uid="cms_plugin.apps.rewire")
