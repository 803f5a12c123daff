"""POST an image (file or URL) -> 202 + Location; GET its status and result; reviewers decide."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.apps import apps
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse

from .. import services
from ..conf import humanmade_settings
from ..models import Detection
from .errors import api_error, api_exception_handler, error_code
from .permissions import CanReview, is_reviewer
from .serializers import DetectionSerializer, ReviewSerializer, SubmitSerializer
from .throttling import SubmitThrottle

try:  # richer OpenAPI docs where drf-spectacular is installed; nothing needs it
    from drf_spectacular.utils import extend_schema
except ImportError:  # pragma: no cover

    def extend_schema(**kwargs):
        return lambda view: view


# Set on the request by an upload handler that refused a file for its size (demo_site's).
REFUSED_ATTR = "humanmade_upload_refused"


def _authentication_classes() -> list:
    # Token first: its WWW-Authenticate header turns a missing or bad credential into 401
    # (DRF answers 403 when the first authenticator has no such header, as sessions).
    classes: list = []
    if apps.is_installed("rest_framework.authtoken"):
        from rest_framework.authentication import TokenAuthentication

        classes.append(TokenAuthentication)
    return [*classes, SessionAuthentication]


QUEUE_DOWN = (
    "The image is stored as detection #{pk}, but the scoring queue cannot be reached; it "
    "will be queued by the first sweep after the queue is back. Sending it again returns "
    "the same detection."
)


class DetectionPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class DetectionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Images submitted for scoring. Scores are advisory; reviewers decide."""

    serializer_class = DetectionSerializer
    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    pagination_class = DetectionPagination
    filter_fields = ("status", "band", "model_version", "decision")
    lookup_value_regex = r"\d+"

    def get_authenticators(self):
        return [cls() for cls in _authentication_classes()]

    def get_exception_handler(self):
        return api_exception_handler

    def get_throttles(self):
        return [SubmitThrottle()] if self.action == "create" else []

    def get_permissions(self):
        if self.action == "review":
            return [IsAuthenticated(), CanReview()]
        return super().get_permissions()

    def get_serializer_class(self):
        return {"create": SubmitSerializer, "review": ReviewSerializer}.get(
            self.action, DetectionSerializer
        )

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Detection.objects.none()
        queryset = Detection.objects.select_related("reviewer", "content_type").order_by("-pk")
        user = self.request.user
        if not is_reviewer(user):
            queryset = queryset.filter(submitted_by=user)
        if self.action != "list":
            return queryset
        params = self.request.query_params
        for name in self.filter_fields:
            if params.get(name):
                queryset = queryset.filter(**{name: params[name]})
        if params.get("object"):
            queryset = queryset.filter(**_object_filter(params["object"]))
        for name, lookup, end in (
            ("created_after", "created_at__gte", False),
            ("created_before", "created_at__lt", True),
        ):
            if params.get(name):
                queryset = queryset.filter(**{lookup: _parse_when(name, params[name], end)})
        return queryset

    def get_serializer(self, *args, **kwargs):
        # A page of detections looks up the decisions that apply to them in one query.
        if self.action == "list" and args and not isinstance(args[0], Detection):
            from ..matching import decisions_for

            rows = list(args[0])
            kwargs.setdefault("context", self.get_serializer_context())
            kwargs["context"]["decisions"] = decisions_for(rows)
            args = (rows, *args[1:])
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        request=SubmitSerializer,
        responses={202: DetectionSerializer},
        description="Queue an image (multipart `file`) or an http(s) `url` for scoring.",
    )
    def create(self, request, *args, **kwargs):
        submit = SubmitSerializer(data=request.data)  # parsing runs the upload handlers
        refused = getattr(request._request, REFUSED_ATTR, None)
        if refused:
            return api_error("file_too_large", refused, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        submit.is_valid(raise_exception=True)
        from detector_core import HumanmadeError
        from detector_core.errors import FileTooLargeError

        upload = submit.validated_data.get("file")
        try:
            if upload is not None:
                limit = int(humanmade_settings.MAX_UPLOAD_BYTES)
                if upload.size is not None and upload.size > limit:
                    raise FileTooLargeError(
                        f"The file is {upload.size:,} bytes; the limit is {limit:,} bytes."
                    )
                try:
                    detection = services.score_upload(upload, user=request.user)
                finally:
                    upload.close()
            else:
                detection = services.submit_url(submit.validated_data["url"], user=request.user)
        except FileTooLargeError as exc:
            return api_error("file_too_large", str(exc), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        except HumanmadeError as exc:
            return api_error(error_code(exc), str(exc), status.HTTP_400_BAD_REQUEST)
        if getattr(detection, "queued", None) is False:
            return api_error(
                "queue_unavailable",
                QUEUE_DOWN.format(pk=detection.pk),
                status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": "30"},
                id=detection.pk,
                url=reverse(
                    "cms_plugin_api:detection-detail", args=[detection.pk], request=request
                ),
            )
        body = DetectionSerializer(detection, context=self.get_serializer_context()).data
        return Response(
            body, status=status.HTTP_202_ACCEPTED, headers={"Location": str(body["url"])}
        )

    @extend_schema(request=ReviewSerializer, responses={200: DetectionSerializer})
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        """Record a person's decision: `human_made` or `ai_generated`, with an optional note."""
        detection = self.get_object()
        form = ReviewSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            detection = services.record_review(
                detection,
                request.user,
                form.validated_data["decision"],
                form.validated_data["note"],
            )
        except services.ReviewRefused as exc:
            return api_error("not_reviewable", str(exc), status.HTTP_409_CONFLICT)
        return Response(DetectionSerializer(detection, context=self.get_serializer_context()).data)


def _object_filter(text: str) -> dict:
    """`?object=wagtailimages.image:12`: the Detections of one watched object."""
    from django.contrib.contenttypes.models import ContentType

    label, _, object_id = text.partition(":")
    app_label, _, model = label.lower().partition(".")
    content_type = ContentType.objects.filter(app_label=app_label, model=model).first()
    if content_type is None or not object_id:
        raise ValidationError(
            {"object": "Use app_label.model:id, e.g. wagtailimages.image:12 or filer.image:3."}
        )
    return {"content_type": content_type, "object_id": object_id}


def _parse_when(name: str, text: str, end: bool) -> datetime:
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise ValidationError({name: "Use an ISO date (2026-01-31) or date-time."})
        moment = datetime.combine(day, time.min)
        if end:
            moment += timedelta(days=1)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return moment
