"""The demo's "newsroom": photos with an image field that cms_plugin watches."""

from django.db import models


class NewsPhoto(models.Model):
    title = models.CharField(max_length=200)
    image = models.ImageField(upload_to="newsroom/%Y/%m/")
    credit = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "newsroom photo"

    def __str__(self) -> str:
        return self.title
