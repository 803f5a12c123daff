"""The mistake the system check catches: the API after Wagtail's catch-all route."""

from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls

urlpatterns = [
    path("admin/", include(wagtailadmin_urls)),
    path("", include(wagtail_urls)),
    path("api/", include("cms_plugin.api.urls")),
]
