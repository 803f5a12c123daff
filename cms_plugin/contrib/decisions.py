"""One-click decisions from a CMS's own screens, recorded like the Django admin's."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.utils.http import url_has_allowed_host_and_scheme

from .. import services
from ..api.permissions import is_reviewer
from ..models import Detection

__all__ = ["decide", "is_reviewer"]


def decide(request: HttpRequest, pk: int, fallback_url: str) -> HttpResponseRedirect:
    """Record the POSTed decision (who and when) and go back to `next` (or `fallback_url`)."""
    if not is_reviewer(request.user):
        raise PermissionDenied
    detection = get_object_or_404(Detection, pk=pk)
    decision = request.POST.get("decision", "")
    note = request.POST.get("note", "").strip()[:2000]
    try:
        services.record_review(detection, request.user, decision, note)
    except services.ReviewRefused as exc:
        messages.error(request, str(exc))
    else:
        title = detection.source_description()[0] or f"Detection #{pk}"
        label = Detection.Decision(decision).label
        messages.success(request, f"“{title}” confirmed {label}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = fallback_url
    return HttpResponseRedirect(target)
