from django.contrib import admin
from django.urls import include, path

from . import views

demo_patterns = (
    [
        path("", views.index, name="index"),
        path("score.json", views.score_json, name="score-json"),
    ],
    "demo_site",
)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include(demo_patterns)),
]
