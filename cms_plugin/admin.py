"""The review queue: needs_review first, oldest first; a person decides, the score advises."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db.models import Case, F, IntegerField, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from . import services
from .images import heatmap_response, image_response, stored_thumbnail
from .matching import decision_for
from .models import REVIEW_PERMISSION, Detection, Review
from .presentation import clipped, evidence_items, own_reasons
from .sources import source_link

ADVISORY = (
    "The score is advisory: it is evidence for your decision, never a verdict on its own. "
    "Wrongly calling someone's work AI-made is the worst mistake this tool can make."
)


class ReviewActionForm(ActionForm):
    note = forms.CharField(
        required=False,
        max_length=2000,
        label="Note (optional)",
        widget=forms.TextInput(attrs={"size": 40, "placeholder": "why (optional)"}),
    )


class BandChangedFilter(admin.SimpleListFilter):
    """Re-scored images whose band moved (yes) or stayed (no) with the new model."""

    title = "band changed by re-score"
    parameter_name = "band_changed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "yes"), ("no", "no (re-scored, same band)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Detection]) -> QuerySet[Detection]:
        rescored = queryset.filter(rescored_at__isnull=False).exclude(previous_band="")
        if self.value() == "yes":
            return rescored.exclude(previous_band=F("band"))
        if self.value() == "no":
            return rescored.filter(previous_band=F("band"))
        return queryset


class ReviewInline(admin.TabularInline):
    model = Review
    extra = 0
    can_delete = False
    fields = ("created_at", "reviewer", "decision", "note")
    readonly_fields = fields
    verbose_name = "decision"
    verbose_name_plural = "decision history"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Detection)
class DetectionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "thumbnail",
        "probability_bar",
        "band_pill",
        "why",
        "band_change",
        "review",
        "engine_model",
        "source",
        "created",
    )
    list_display_links = ("id", "thumbnail")
    list_filter = (
        "status",
        "band",
        "decided_by",
        BandChangedFilter,
        "model_version",
        "created_at",
        "decision",
        # Which watched model (a Wagtail image, a filer image, ...) an image came from.
        ("content_type", admin.RelatedOnlyFieldListFilter),
    )
    list_per_page = 50
    search_fields = ("sha256", "source_url", "note")
    action_form = ReviewActionForm
    actions = ("confirm_human_made", "confirm_ai_generated")
    inlines = (ReviewInline,)
    change_form_template = "admin/cms_plugin/detection/change_form.html"
    change_list_template = "admin/cms_plugin/detection/change_list.html"
    fieldsets = (
        (
            "Result (advisory)",
            {
                # The headline is the panel's title above; the figure repeats it in its image.
                "fields": (
                    "decided_by",
                    "experts",
                    "status",
                    "error",
                    "model_version",
                )
            },
        ),
        ("Human review", {"fields": ("decision", "reviewer", "reviewed_at", "note")}),
        (
            "Before the last re-score",
            {
                "fields": (
                    "previous_band",
                    "previous_probability",
                    "previous_model_version",
                    "rescored_at",
                )
            },
        ),
        (
            "Image",
            {
                "fields": (
                    "source",
                    "sha256",
                    "created_at",
                    "scored_at",
                    "attempts",
                    "evidence_json",
                )
            },
        ),
    )
    # Everything shown is read-only: scores come from the engine, decisions from the actions.
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])

    # --- permissions: scores are written by the engine, decisions by reviewers -----------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the decisions are the training data of the next model: keep them

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or self.has_review_permission(request)

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.has_perm(REVIEW_PERMISSION)

    # --- the queue ------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("reviewer", "content_type")

    def get_ordering(self, request: HttpRequest) -> list:
        waiting_first = Case(
            When(status=Detection.Status.NEEDS_REVIEW, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        return [waiting_first.asc(), "created_at", "pk"]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra = {"title": "Review queue", "advisory": ADVISORY, **(extra_context or {})}
        return super().changelist_view(request, extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = {
            "advisory": ADVISORY,
            "detection": obj,
            "can_review": obj is not None
            and obj.can_be_reviewed
            and self.has_review_permission(request),
            "decisions": Detection.Decision.choices,
            "evidence_items": evidence_items(obj.evidence or {}) if obj else [],
            "expert_probabilities": [
                (name, f"{p:.0%}") for name, p in sorted(obj.expert_probabilities.items())
            ]
            if obj
            else [],
            "reasons": own_reasons(obj.evidence or {}) if obj else [],
            "source_link": source_link(obj) if obj else "",
            "matched_decision": decision_for(obj) if obj else None,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    # --- columns --------------------------------------------------------------------------

    @admin.display(description="image")
    def thumbnail(self, obj: Detection) -> str:
        if not obj.upload and not obj.content_type_id:
            # A URL that could not be fetched: no image was stored, so none is shown.
            return format_html('<span class="hm-muted" title="{}">no image</span>', obj.error)
        url = reverse("admin:cms_plugin_detection_thumbnail", args=[obj.pk])
        return format_html(
            '<img src="{}" alt="image #{}" loading="lazy" style="max-width:56px;max-height:56px">',
            url,
            obj.pk,
        )

    @admin.display(description="AI probability", ordering="probability")
    def probability_bar(self, obj: Detection) -> str:
        if obj.probability is None:
            return "–"
        bar = format_html(
            '<div class="hm-bar" title="{}"><div class="hm-fill hm-{}" style="width:{}%">'
            "</div></div>{}% pixels",
            obj.summary,
            obj.band_colour,
            obj.percent,
            obj.percent,
        )
        if obj.decided_by and obj.decided_by != Detection.DecidedBy.PIXELS:
            # A 1% bar beside "likely AI" is no contradiction: something else set the band.
            return format_html(
                '{}<br><small class="hm-decided-by">band set by {}</small>',
                bar,
                obj.get_decided_by_display(),
            )
        return bar

    @admin.display(description="band", ordering="band")
    def band_pill(self, obj: Detection) -> str:
        if not obj.band:
            return ""
        return format_html(
            '<span class="hm-band hm-{}">{}</span>', obj.band_colour, obj.get_band_display()
        )

    @admin.display(description="review", ordering="status")
    def review(self, obj: Detection) -> str:
        if obj.decision:
            return f"{obj.get_status_display()}: {obj.get_decision_display()}"
        matched = decision_for(obj)
        if matched is not None:
            # The same picture was decided before: the reviewer sees it before the score.
            return format_html(
                '{}<br><strong class="hm-decision-{}" title="{}">{} (matches #{})</strong>',
                obj.get_status_display(),
                matched.tone,
                matched.how,
                matched.headline,
                matched.detection_id,
            )
        return obj.get_status_display()

    @admin.display(description="why", ordering="decided_by")
    def why(self, obj: Detection) -> str:
        """What decided the band; the headline says it in full, shown on hover."""
        if not obj.decided_by:
            return ""
        return format_html('<span title="{}">{}</span>', obj.summary, obj.get_decided_by_display())

    @admin.display(description="model", ordering="model_version")
    def engine_model(self, obj: Detection) -> str:
        return clipped(obj.model_version, 18)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: Detection) -> str:
        return format_html(
            '<span title="{}">{}</span>',
            obj.created_at.isoformat(timespec="seconds"),
            f"{obj.created_at:%Y-%m-%d}",
        )

    @admin.display(description="re-score")
    def band_change(self, obj: Detection) -> str:
        if obj.band_changed:
            return obj.band_change
        return "same band" if obj.rescored_at else ""

    @admin.display(description="source")
    def source(self, obj: Detection) -> str:
        return source_link(obj, limit=28)

    @admin.display(description="result")
    def summary(self, obj: Detection) -> str:
        return obj.summary or "not scored yet"

    @admin.display(description="each expert")
    def experts(self, obj: Detection) -> str:
        probabilities = obj.expert_probabilities
        if not probabilities:
            return "—"
        return ", ".join(f"{name}: {p:.0%}" for name, p in sorted(probabilities.items()))

    @admin.display(description="engine output")
    def evidence_json(self, obj: Detection) -> str:
        text = json.dumps(obj.evidence, indent=2, ensure_ascii=False)[:20000]
        return format_html("<pre>{}</pre>", text)

    # --- bulk actions ---------------------------------------------------------------------

    def _decide(self, request: HttpRequest, queryset, decision: str) -> None:
        note = request.POST.get("note", "").strip()[:2000]
        done, skipped = 0, 0
        for detection in queryset:
            try:
                services.record_review(detection, request.user, decision, note)
                done += 1
            except services.ReviewRefused:
                skipped += 1
        label = Detection.Decision(decision).label
        self.message_user(request, f"{done} image(s) confirmed {label}.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{skipped} image(s) skipped: not scored yet, or scoring failed.",
                messages.WARNING,
            )

    @admin.action(description="Confirm human-made", permissions=["review"])
    def confirm_human_made(self, request: HttpRequest, queryset) -> None:
        self._decide(request, queryset, Detection.Decision.HUMAN_MADE)

    @admin.action(description="Confirm AI-generated", permissions=["review"])
    def confirm_ai_generated(self, request: HttpRequest, queryset) -> None:
        self._decide(request, queryset, Detection.Decision.AI_GENERATED)

    # --- extra views ----------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/review/",
                wrap(require_POST(self.review_view)),
                name="cms_plugin_detection_review",
            ),
            path(
                "<int:pk>/thumbnail/",
                wrap(self.thumbnail_view),
                name="cms_plugin_detection_thumbnail",
            ),
            path("<int:pk>/heatmap/", wrap(self.heatmap_view), name="cms_plugin_detection_heatmap"),
            *super().get_urls(),
        ]

    def review_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_review_permission(request):
            raise PermissionDenied
        detection = get_object_or_404(Detection, pk=pk)
        decision = request.POST.get("decision", "")
        note = request.POST.get("note", "").strip()[:2000]
        try:
            services.record_review(detection, request.user, decision, note)
        except services.ReviewRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request,
                f"Detection #{pk} confirmed {Detection.Decision(decision).label}.",
                messages.SUCCESS,
            )
        nxt = (
            Detection.objects.filter(status=Detection.Status.NEEDS_REVIEW)
            .order_by("created_at", "pk")
            .values_list("pk", flat=True)
            .first()
        )
        if nxt is not None and request.POST.get("next") == "queue":
            return HttpResponseRedirect(reverse("admin:cms_plugin_detection_change", args=[nxt]))
        return HttpResponseRedirect(reverse("admin:cms_plugin_detection_changelist"))

    def thumbnail_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        detection = get_object_or_404(Detection, pk=pk)
        return image_response(stored_thumbnail(detection))

    def heatmap_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return heatmap_response(get_object_or_404(Detection, pk=pk))
