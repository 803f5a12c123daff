"""The humanmade demo site: one small Django project that scores an uploaded image.

It is both the project package (settings, URLs, Celery app) and an installed app (views,
templates, the "newsroom" model watched by cms_plugin, and the `demo` management command).
Everything runs embedded by default: SQLite, no broker (scoring runs in-process after
commit), no services.
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
