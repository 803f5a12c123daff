from django.urls import path

from . import views

app_name = "humanmade_wagtail"

urlpatterns = [
    path("review/", views.queue, name="queue"),
    path("<int:pk>/review/", views.review, name="review"),
    path("<int:pk>/thumbnail/", views.thumbnail, name="thumbnail"),
    path("<int:pk>/heatmap/", views.heatmap, name="heatmap"),
]
