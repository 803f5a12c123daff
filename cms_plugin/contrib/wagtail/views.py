"""Wagtail admin views: the "Needs review" queue, decisions, thumbnails and heatmaps."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST
from wagtail.images import get_image_model
from wagtail.images.models import AbstractImage
from wagtail.permissions import policy_registry

from ...images import heatmap_response, image_response, stored_thumbnail
from ...models import Detection
from ..decisions import decide, is_reviewer
from ..verdicts import badge, needs_review

QUEUE_PAGE_SIZE = 30


def image_models() -> list[type[AbstractImage]]:
    """Wagtail's image model and any custom one (WAGTAILIMAGES_IMAGE_MODEL)."""
    return [m for m in apps.get_models() if issubclass(m, AbstractImage) and not m._meta.abstract]


def detection_urls(detection: Detection, request: HttpRequest | None) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {
        "thumbnail_url": reverse("humanmade_wagtail:thumbnail", args=[detection.pk]),
        "heatmap_url": reverse("humanmade_wagtail:heatmap", args=[detection.pk]),
        "review_url": reverse("humanmade_wagtail:review", args=[detection.pk])
        if is_reviewer(user)
        else None,
        "next_url": request.get_full_path() if request is not None else "",
    }


def queue(request: HttpRequest) -> TemplateResponse:
    if not is_reviewer(request.user):
        raise PermissionDenied
    page = Paginator(needs_review(image_models()), QUEUE_PAGE_SIZE).get_page(request.GET.get("p"))
    rows = []
    for detection in page:
        title, edit_url = detection.source_description()
        rows.append(
            {
                "detection": detection,
                "title": title or detection.source_label(),
                "edit_url": edit_url,
                "badge": badge(detection),
                **detection_urls(detection, request),
            }
        )
    return TemplateResponse(
        request,
        "humanmade_wagtail/queue.html",
        {"page_obj": page, "rows": rows, "header_title": "Needs review"},
    )


@require_POST
def review(request: HttpRequest, pk: int) -> HttpResponse:
    return decide(request, pk, reverse("humanmade_wagtail:queue"))


def _viewable(request: HttpRequest, pk: int) -> Detection:
    """Reviewers see every image; editors those they may change or choose."""
    detection = get_object_or_404(Detection, pk=pk)
    if is_reviewer(request.user):
        return detection
    image = detection.source_object()
    policy = policy_registry.get_by_type(get_image_model())
    if isinstance(image, AbstractImage) and policy.user_has_any_permission_for_instance(
        request.user, ["change", "choose"], image
    ):
        return detection
    raise PermissionDenied


def thumbnail(request: HttpRequest, pk: int) -> HttpResponse:
    return image_response(stored_thumbnail(_viewable(request, pk)))


def heatmap(request: HttpRequest, pk: int) -> HttpResponse:
    return heatmap_response(_viewable(request, pk))
