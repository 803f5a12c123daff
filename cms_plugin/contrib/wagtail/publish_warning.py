"""Optional (HUMANMADE["WAGTAIL_PUBLISH_WARNING"], off by default): publishing a page that
uses a likely-AI image no person has confirmed first shows a warning. It advises, never
blocks: the editor can publish anyway, and the draft is saved either way."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST
from wagtail.models import Page, ReferenceIndex

from ...conf import humanmade_settings
from ...models import Detection
from ..verdicts import badge


def unconfirmed_ai_images(page: Page) -> list[Detection]:
    """The current Detections of the images `page` uses that say likely AI with no
    person's decision yet."""
    # The references of the content about to be published (the stored index may still hold
    # the live version's); Wagtail has no public call for an unsaved object's references.
    refs = {(ct, str(pk)) for ct, pk, *_ in ReferenceIndex._extract_references_from_object(page)}
    if not refs:
        return []
    match = Q()
    for content_type_id, object_id in refs:
        match |= Q(content_type_id=content_type_id, object_id=object_id)
    latest: dict[tuple[int, str], Detection] = {}
    for detection in Detection.objects.filter(match).exclude(status=Detection.Status.STALE):
        key = (detection.content_type_id, detection.object_id)
        if key not in latest or detection.pk > latest[key].pk:
            latest[key] = detection
    return [
        d
        for d in latest.values()
        if d.band == Detection.Band.LIKELY_AI and d.status != Detection.Status.REVIEWED
    ]


def before_publish_page(request: HttpRequest, page: Page) -> HttpResponse | None:
    if not humanmade_settings.WAGTAIL_PUBLISH_WARNING:
        return None
    flagged = unconfirmed_ai_images(page)
    if not flagged:
        return None
    revision = page.get_latest_revision()
    rows: list[dict[str, Any]] = []
    for detection in flagged:
        title, edit_url = detection.source_description()
        rows.append({"title": title, "edit_url": edit_url, "badge": badge(detection)})
    return TemplateResponse(
        request,
        "humanmade_wagtail/publish_warning.html",
        {
            "page": page,
            "rows": rows,
            "header_title": "Publish with a likely-AI image?",
            "publish_url": reverse(
                "humanmade_wagtail_publish", args=[page.pk, revision.pk if revision else 0]
            ),
            "edit_url": reverse("wagtailadmin_pages:edit", args=[page.pk]),
        },
    )


@require_POST
def publish_anyway(request: HttpRequest, page_id: int, revision_id: int) -> HttpResponse:
    """The editor read the warning and publishes the revision it was about."""
    page = get_object_or_404(Page, pk=page_id).specific
    if not page.permissions_for_user(request.user).can_publish():
        raise PermissionDenied
    revision = get_object_or_404(page.revisions, pk=revision_id)
    revision.publish(user=request.user)
    messages.success(request, f"Page “{page.get_admin_display_title()}” published.")
    return HttpResponseRedirect(reverse("wagtailadmin_explore", args=[page.get_parent().pk]))


def register_urls() -> list:
    return [
        path(
            "humanmade/publish/<int:page_id>/<int:revision_id>/",
            publish_anyway,
            name="humanmade_wagtail_publish",
        )
    ]
