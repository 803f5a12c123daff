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
    path("api/", include("cms_plugin.api.urls")),
    path("desk/", include("cms_plugin.desk.urls")),
    path("", include(demo_patterns)),
]

try:  # the OpenAPI schema of the API, when drf-spectacular is installed (the django extra)
    from drf_spectacular.views import (
        SpectacularAPIView,
        SpectacularRedocView,
        SpectacularSwaggerView,
    )
except ImportError:  # pragma: no cover
    pass
else:
    urlpatterns[1:1] = [  # above the API, whose last route takes the rest of api/
        path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
        path(
            "api/schema/swagger-ui/",
            SpectacularSwaggerView.as_view(url_name="api-schema"),
            name="api-swagger-ui",
        ),
        path(
            "api/schema/redoc/",
            SpectacularRedocView.as_view(
                url_name="api-schema", template_name="demo_site/redoc.html"
            ),
            name="api-redoc",
        ),
    ]
