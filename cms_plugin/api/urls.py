"""`path("api/", include("cms_plugin.api.urls"))` gives /api/detections/ and its review action.

The last route takes every other path under that prefix and answers a JSON 404: include
other routes under the same prefix (an OpenAPI schema, say) above this include.
"""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from .errors import not_found
from .views import DetectionViewSet

app_name = "cms_plugin_api"

router = SimpleRouter()
router.register("detections", DetectionViewSet, basename="detection")

urlpatterns = [*router.urls, re_path(r"^(?P<path>.*)$", not_found, name="not-found")]
