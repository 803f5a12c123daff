"""`path("api/", include("cms_plugin.api.urls"))` gives /api/detections/ and its review action."""

from rest_framework.routers import SimpleRouter

from .views import DetectionViewSet

app_name = "cms_plugin_api"

router = SimpleRouter()
router.register("detections", DetectionViewSet, basename="detection")

urlpatterns = router.urls
