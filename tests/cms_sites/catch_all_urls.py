"""A URLconf with the mistake E011 reports: a catch-all page route above the API."""

from django.http import HttpResponse
from django.urls import include, path, re_path


def catch_all(request, path=""):
    return HttpResponse("a CMS page")


urlpatterns = [
    re_path(r"^(?P<path>.*)$", catch_all, name="catch_all"),
    path("api/", include("cms_plugin.api.urls")),
]
