"""The demo page (`/`) and its JSON twin (`POST /score.json`). Both are CSRF-protected."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views import csrf
from django.views.decorators.http import require_http_methods, require_POST

from cms_plugin.images import data_url, heatmap_figure, thumbnail_jpeg
from cms_plugin.presentation import verdict_view
from detector_core.errors import HumanmadeError, WeightsError
from detector_core.fetch import FetchPolicy, fetch_url
from detector_core.headline import percent_in_band
from detector_core.intake import read_bytes
from detector_core.verdict import Verdict

from .engine import get_detector, human_bytes, max_upload_bytes
from .uploads import REFUSED_ATTR

TEMPLATE = "demo_site/index.html"
MAX_URL_LENGTH = 2048


class InputRefused(Exception):
    """The request itself is unusable (no input, two inputs, an upload over the limit)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _error_code(exc: Exception) -> str:
    """NotAnImageError -> 'not_an_image', HTTPStatusError -> 'http_status'."""
    if isinstance(exc, InputRefused):
        return exc.code
    name = type(exc).__name__.removesuffix("Error") or "error"
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@dataclass(frozen=True)
class Scored:
    verdict: Verdict
    data: bytes  # the bytes that were scored, for the thumbnail and the heatmap figure
    name: str  # the file name or the URL, as the visitor gave it


def _score(request: HttpRequest, heatmap: bool = False) -> Scored:
    """Score the uploaded `file` or the `url` of a POST; raises InputRefused/HumanmadeError."""
    refused = getattr(request, REFUSED_ATTR, None)
    if refused:
        raise InputRefused(refused, "file_too_large")
    upload = request.FILES.get("file")
    url = request.POST.get("url", "").strip()
    if upload is not None and url:
        raise InputRefused("Give either an image file or an image URL, not both.", "two_inputs")
    detector = get_detector()
    if upload is not None:
        try:
            limit = max_upload_bytes()
            if upload.size is not None and upload.size > limit:  # if other handlers are set
                raise InputRefused(
                    f"The file is {human_bytes(upload.size)}; the limit is {human_bytes(limit)}.",
                    "file_too_large",
                )
            data = read_bytes(upload, detector.limits)
        finally:
            upload.close()
        return Scored(detector.score(data, heatmap=heatmap), data, upload.name or "upload")
    if url:
        if len(url) > MAX_URL_LENGTH:
            raise InputRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.", "bad_url")
        # Fetched here rather than by score_url, to keep the bytes for the pictures.
        data = fetch_url(url, detector.fetch_policy or FetchPolicy()).data
        return Scored(detector.score(data, heatmap=heatmap), data, url)
    raise InputRefused("Choose an image file to upload or enter an image URL.", "no_input")


def _status_for(exc: Exception) -> int:
    # Missing or damaged weights are the server's fault, not the visitor's.
    return 503 if isinstance(exc, WeightsError) else 400


def _error_title(exc: Exception) -> str:
    if isinstance(exc, WeightsError):
        return "The detector is not available."
    if isinstance(exc, InputRefused) and exc.code in ("no_input", "two_inputs"):
        return "Nothing was scored."
    return "This image could not be scored."


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {
        "max_upload": human_bytes(max_upload_bytes()),
        "url": "",
    }
    if request.method == "GET":
        return render(request, TEMPLATE, context)
    context["url"] = request.POST.get("url", "")[:MAX_URL_LENGTH]
    try:
        scored = _score(request, heatmap=True)
    except (InputRefused, HumanmadeError) as exc:
        status = _status_for(exc)
        context["error"] = str(exc)
        context["error_title"] = _error_title(exc)
        return render(request, TEMPLATE, context, status=status)
    verdict = scored.verdict
    context["verdict"] = verdict
    context["view"] = verdict_view(verdict.to_dict())
    context["file_name"] = scored.name
    context["percent"] = percent_in_band(verdict.ai_probability, verdict.cutoffs, decimals=1)
    context["thumbnail_url"] = data_url(thumbnail_jpeg(scored.data), "image/jpeg")
    context["heatmap_url"] = data_url(heatmap_figure(scored.data, verdict, "JPEG"), "image/jpeg")
    return render(request, TEMPLATE, context)


@require_POST
def score_json(request: HttpRequest) -> JsonResponse:
    """multipart `file` (or form field `url`) -> Verdict.to_dict(), or {error, message}."""
    try:
        scored = _score(request)
    except (InputRefused, HumanmadeError) as exc:
        return JsonResponse(
            {"error": _error_code(exc), "message": str(exc)}, status=_status_for(exc)
        )
    return JsonResponse(scored.verdict.to_dict())


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """JSON for the JSON endpoint, Django's usual page everywhere else."""
    if request.path == reverse("demo_site:score-json"):
        return JsonResponse(
            {
                "error": "csrf_failed",
                "message": f"CSRF verification failed ({reason.rstrip('.')}). GET / first for "
                "the csrftoken cookie, then send it back with its value in the X-CSRFToken header.",
            },
            status=403,
        )
    return csrf.csrf_failure(request, reason)
