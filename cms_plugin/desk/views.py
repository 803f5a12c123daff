"""The checking desk: staff send images (files, a ZIP, URLs), watch the verdicts arrive, open
a permalink report per image and export a batch. Who may use it: anyone the review queue
lets in (the `view_detection` or `review_detection` permission)."""

from __future__ import annotations

import csv
import io
import json
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from detector_core.csv_safe import safe_row

from ..api.views import REFUSED_ATTR
from ..conf import humanmade_settings
from ..images import image_response, stored_thumbnail
from ..matching import MatchedDecision, decision_for, decisions_for
from ..models import REVIEW_PERMISSION, Batch, Detection
from ..presentation import verdict_view
from .submissions import submit_batch

VIEW_PERMISSION = "cms_plugin.view_detection"
HISTORY_LENGTH = 20
EXPORT_COLUMNS = (
    "id",
    "name",
    # A person's decision first (this image's, or a matched copy's), then the model's score.
    "decision",
    "decision_by",
    "decision_at",
    "decision_match",
    "decision_distance",
    "decided_detection",
    "status",
    "headline",
    "band",
    "decided_by",
    "ai_probability",
    "strong_evidence",
    "model_version",
    "sha256",
    "error",
    "report_url",
)


def can_use_desk(user: Any) -> bool:
    return bool(
        user.is_active and (user.has_perm(VIEW_PERMISSION) or user.has_perm(REVIEW_PERMISSION))
    )


def desk_view(view: Any) -> Any:
    """Logged in (else to the login page), with the review queue's permissions (else 403)."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_use_desk(request.user):
            raise PermissionDenied("The checking desk needs the permission to view detections.")
        return view(request, *args, **kwargs)

    return wrapped


def _row(
    batch: Batch, detection: Detection, request: HttpRequest, decision: MatchedDecision | None
) -> dict[str, Any]:
    data = detection.evidence or {}
    view = verdict_view(data, detection.summary) if detection.probability is not None else None
    return {
        "detection": detection,
        "name": batch.names.get(str(detection.pk), detection.source_label()),
        "view": view,
        "decision": decision,
        "report_url": request.build_absolute_uri(
            reverse("cms_plugin_desk:report", args=[detection.pk])
        ),
    }


def _rows(batch: Batch, request: HttpRequest) -> list[dict[str, Any]]:
    detections = list(batch.detections.select_related("reviewer").order_by("pk"))
    decisions = decisions_for(detections)
    return [_row(batch, d, request, decisions.get(d.pk)) for d in detections]


def _progress(rows: list[dict[str, Any]]) -> dict[str, int]:
    done = sum(1 for r in rows if r["detection"].is_final)
    return {"done": done, "total": len(rows)}


@desk_view
@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {
        "max_files": humanmade_settings.DESK_MAX_FILES,
        "max_mb": round(int(humanmade_settings.MAX_UPLOAD_BYTES) / (1 << 20), 1),
        "history": Batch.objects.filter(created_by=request.user)[:HISTORY_LENGTH],
    }
    if request.method == "POST":
        files = request.FILES.getlist("files")
        urls = request.POST.get("urls", "")
        # A site's upload handler may have dropped a file for its size, and said so here.
        dropped = getattr(request, REFUSED_ATTR, None)
        if not files and not urls.strip() and not dropped:
            context["error"] = "Choose image files or a ZIP, or paste image URLs (one a line)."
            return render(request, "cms_plugin/desk/index.html", context, status=400)
        batch = submit_batch(request.user, files, urls)
        if dropped:
            batch.refused = [*batch.refused, {"name": "an uploaded file", "reason": dropped}]
            batch.save(update_fields=["refused"])
        if not batch.detections.exists():
            # Nothing could be queued: say why here, and leave no empty "0 of 0" batch behind.
            context["refused"] = batch.refused
            context["error"] = "Nothing could be checked: every input was refused."
            batch.delete()
            return render(request, "cms_plugin/desk/index.html", context, status=400)
        return redirect("cms_plugin_desk:batch", pk=batch.pk)
    return render(request, "cms_plugin/desk/index.html", context)


@desk_view
@require_GET
def batch_view(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(Batch, pk=pk)
    rows = _rows(batch, request)
    context = {"batch": batch, "rows": rows, "progress": _progress(rows)}
    if request.GET.get("fragment") == "table":  # what the page's script swaps in
        return render(request, "cms_plugin/desk/_batch_table.html", context)
    return render(request, "cms_plugin/desk/batch.html", context)


@desk_view
@require_GET
def batch_status(request: HttpRequest, pk: int) -> JsonResponse:
    batch = get_object_or_404(Batch, pk=pk)
    statuses = list(batch.detections.values_list("status", flat=True))
    done = sum(1 for s in statuses if Detection(status=s).is_final)
    return JsonResponse({"done": done, "total": len(statuses)})


def _export_records(batch: Batch, request: HttpRequest) -> list[dict[str, Any]]:
    records = []
    for row in _rows(batch, request):
        d, view = row["detection"], row["view"]
        strong = [e for e in (view.evidence if view else []) if e.get("strength") == "strong_ai"]
        decision = row["decision"]
        records.append(
            {
                "id": d.pk,
                "name": row["name"],
                "decision": decision.to_dict() if decision else None,
                "status": d.status,
                "headline": d.summary,
                "band": d.band,
                "decided_by": d.decided_by,
                "ai_probability": d.probability,
                "strong_evidence": [f"{e.get('summary')} ({e.get('where')})" for e in strong],
                "model_version": d.model_version,
                "sha256": d.sha256,
                "error": d.error,
                "report_url": row["report_url"],
            }
        )
    return records


@desk_view
@require_GET
def batch_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    batch = get_object_or_404(Batch, pk=pk)
    records = _export_records(batch, request)
    filename = f"humanmade-batch-{batch.pk}.{fmt}"
    if fmt == "json":
        body = json.dumps(
            {"batch": batch.pk, "refused": batch.refused, "detections": records},
            ensure_ascii=False,
            indent=2,
        )
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
    else:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        for refused in batch.refused:
            # What was refused is part of the batch too: the export must not lose it.
            writer.writerow(
                safe_row(
                    {
                        "name": refused.get("name", ""),
                        "status": "refused",
                        "error": refused.get("reason", ""),
                    }
                )
            )
        for record in records:
            decision = record["decision"] or {}
            writer.writerow(
                safe_row(
                    {
                        **record,
                        "decision": decision.get("value", ""),
                        "decision_by": decision.get("by") or ("a reviewer" if decision else ""),
                        "decision_at": decision.get("at") or "",
                        "decision_match": decision.get("match", ""),
                        "decision_distance": decision.get("distance", ""),
                        "decided_detection": decision.get("detection", ""),
                        "strong_evidence": " | ".join(record["strong_evidence"]),
                    }
                )
            )
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@desk_view
@require_GET
def report(request: HttpRequest, pk: int) -> HttpResponse:
    detection = get_object_or_404(Detection, pk=pk)
    # A Detection reused by a later batch (the same bytes sent again) belongs to several:
    # the breadcrumb goes back to the batch the reader came from (?batch=), else to their
    # own latest batch that holds it, else to the first.
    batches = detection.batches.all()
    batch = (
        batches.filter(pk=_int(request.GET.get("batch"))).first()
        or batches.filter(created_by=request.user).order_by("-pk").first()
        or batches.order_by("pk").first()
    )
    name = batch.names.get(str(pk)) if batch else None
    view = (
        verdict_view(detection.evidence or {}, detection.summary)
        if detection.probability is not None
        else None
    )
    context = {
        "detection": detection,
        "view": view,
        "decision": decision_for(detection),
        "file_name": name or detection.source_label(),
        "batch": batch,
        "thumbnail_url": reverse("cms_plugin_desk:thumbnail", args=[pk]),
        "heatmap_url": reverse("cms_plugin_desk:heatmap", args=[pk]) if detection.heatmap else "",
    }
    return render(request, "cms_plugin/desk/report.html", context)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


@desk_view
@require_GET
def thumbnail(request: HttpRequest, pk: int) -> HttpResponse:
    return image_response(stored_thumbnail(get_object_or_404(Detection, pk=pk)))


@desk_view
@require_GET
def heatmap(request: HttpRequest, pk: int) -> HttpResponse:
    detection = get_object_or_404(Detection, pk=pk)
    if not detection.heatmap:
        return HttpResponse(status=404)
    with detection.heatmap.open("rb") as fh:
        return image_response(fh.read(), "image/png")
