"""One error shape for the whole API: `{"error": code, "message": text}`.

DRF's own errors (`{"detail": ...}`, validation dicts), Django's refusals of a malformed
request (SuspiciousOperation, an HTML 400 page otherwise) and a database that is locked or
away (a 500 otherwise) all leave in that shape; `code` is stable, `message` is for people.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.db import DatabaseError
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from detector_core.errors import error_code

__all__ = ["api_error", "api_exception_handler", "error_code", "first_message"]

logger = logging.getLogger("cms_plugin")

# DRF's own codes ("not_found", "throttled", ...), except that bad input is one code.
_CODES = {"invalid": "bad_request", "parse_error": "bad_request"}


def api_error(
    code: str,
    message: str,
    status_code: int,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> Response:
    """The one shape, plus `fields` that a client acts on (say, the stored detection's id)."""
    body = {"error": code, "message": message, **fields}
    return Response(body, status=status_code, headers=headers)


def first_message(errors: Any) -> str:
    """The first message of a DRF error structure, prefixed with its field name."""
    if isinstance(errors, dict):
        for field, value in errors.items():
            text = first_message(value)
            return text if field in ("non_field_errors", "detail") else f"{field}: {text}"
    if isinstance(errors, list) and errors:
        return first_message(errors[0])
    return str(errors)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's handler, then every answer rewritten to the one shape; never an HTML page."""
    if isinstance(exc, SuspiciousOperation):  # e.g. RequestDataTooBig, TooManyFieldsSent
        return api_error("bad_request", f"The request was refused: {exc}", 400)
    if isinstance(exc, DatabaseError):
        logger.warning("API request failed, database unavailable: %s", exc)
        return api_error(
            "database_unavailable",
            "The database is busy or unreachable, so the image was not recorded; send it again "
            "shortly.",
            status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "30"},
        )
    if isinstance(exc, Http404):  # what DRF's handler does too, for the code below
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is None:
        logger.error("unexpected error in the humanmade API", exc_info=exc)
        return api_error("internal_error", "An internal error occurred (see the server logs).", 500)
    default = getattr(exc, "default_code", None) or error_code(exc)
    code = _CODES.get(default, default)
    response.data = {"error": code, "message": first_message(response.data)}
    return response


@csrf_exempt  # refusing the POST for a missing token would be Django's HTML 403 page
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Whatever path under the API's prefix no route takes (the last route of
    `cms_plugin.api.urls`): a 404 in the one shape, never Django's HTML page nor, for a POST
    without the trailing slash, APPEND_SLASH's RuntimeError (a 500 with DEBUG on)."""
    message = f"There is no API endpoint at {request.path}."
    if not request.path_info.endswith("/"):
        try:
            match = resolve(request.path_info + "/", getattr(request, "urlconf", None))
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            message += f" Did you mean {request.path}/ (with the trailing slash)?"
    return JsonResponse({"error": "not_found", "message": message}, status=404)
