"""The mistake the system check catches: the API after django CMS's catch-all route."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("cms.urls")),
    path("api/", include("cms_plugin.api.urls")),
]
