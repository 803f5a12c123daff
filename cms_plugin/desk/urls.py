"""`path("desk/", include("cms_plugin.desk.urls"))`: the checking desk for staff."""

from django.urls import path

from . import views

app_name = "cms_plugin_desk"

urlpatterns = [
    path("", views.index, name="index"),
    path("batches/<int:pk>/", views.batch_view, name="batch"),
    path("batches/<int:pk>/status.json", views.batch_status, name="batch-status"),
    path("batches/<int:pk>/export.csv", views.batch_export, {"fmt": "csv"}, name="export-csv"),
    path("batches/<int:pk>/export.json", views.batch_export, {"fmt": "json"}, name="export-json"),
    path("detections/<int:pk>/", views.report, name="report"),
    path("detections/<int:pk>/thumbnail.jpg", views.thumbnail, name="thumbnail"),
    path("detections/<int:pk>/heatmap.png", views.heatmap, name="heatmap"),
]
