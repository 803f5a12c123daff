from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # humanmade's API before django CMS's catch-all page route, which would take it otherwise.
    path("api/", include("cms_plugin.api.urls")),
    path("", include("cms.urls")),
]
