from django.apps import AppConfig


class NewsroomConfig(AppConfig):
    name = "wagtail_site.newsroom"
    label = "newsroom"
    default_auto_field = "django.db.models.BigAutoField"
