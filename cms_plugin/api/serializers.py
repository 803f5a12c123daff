from __future__ import annotations

from rest_framework import serializers

from ..models import Detection
from .permissions import is_reviewer

ADVISORY = "The score is advisory: evidence for a human reviewer, never a verdict on its own."


class DetectionSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="cms_plugin_api:detection-detail")
    summary = serializers.CharField(read_only=True)
    source = serializers.CharField(source="source_label", read_only=True)
    source_title = serializers.SerializerMethodField()
    source_admin_url = serializers.SerializerMethodField()
    reviewer = serializers.SlugRelatedField(slug_field="username", read_only=True)
    heatmap_available = serializers.SerializerMethodField()
    experts = serializers.SerializerMethodField(
        help_text="Each expert's own probability of AI (e.g. trace, clip), before fusion."
    )
    advisory = serializers.SerializerMethodField()
    decision = serializers.SerializerMethodField(
        help_text=(
            "A person's decision that applies to this image, null if none: its own, or that "
            "of the same bytes or a near-duplicate (resized, re-compressed, cropped, "
            "converted) that a reviewer decided. `value` (human_made / ai_generated), `label`, "
            "`by` (the reviewer, or null), `at`, `detection` (the decided one; null where it "
            "is not yours to see), `match` (this_image, same_bytes, near_duplicate), "
            "`distance` (bits of the 64-bit perceptual hash that differ) and `conflicting` "
            "(another copy was decided the other way). It comes before the model's score."
        )
    )

    class Meta:
        model = Detection
        fields = (
            "id",
            "url",
            "status",
            "error",
            "probability",
            "band",
            "decided_by",
            "summary",
            "model_version",
            "sha256",
            "source",
            "source_title",
            "source_admin_url",
            "source_url",
            "evidence",
            "experts",
            "heatmap_available",
            "decision",
            "note",
            "reviewer",
            "reviewed_at",
            "created_at",
            "scored_at",
            "previous_probability",
            "previous_band",
            "previous_model_version",
            "rescored_at",
            "advisory",
        )
        read_only_fields = fields

    def to_representation(self, instance: Detection) -> dict:
        data = super().to_representation(instance)
        request = self.context.get("request")
        evidence = data.get("evidence")
        # The earlier Detection of the same bytes may be another user's: its id would tell
        # this user that someone else sent the image. Reviewers see every row anyway.
        if (
            isinstance(evidence, dict)
            and "deduplicated_from" in evidence
            and (request is None or not is_reviewer(request.user))
        ):
            data["evidence"] = {k: v for k, v in evidence.items() if k != "deduplicated_from"}
        return data

    def get_decision(self, obj: Detection) -> dict | None:
        from ..matching import Match, decision_for, sees_all

        decisions = self.context.get("decisions")
        found = decisions.get(obj.pk) if decisions is not None else decision_for(obj)
        if found is None:
            return None
        request = self.context.get("request")
        user = getattr(request, "user", None)
        # The matching already kept to what the submitter may see; a viewer who is neither
        # staff nor the submitter learns that a reviewer decided, not whose upload it was.
        visible = (
            request is None
            or found.match == Match.THIS_IMAGE
            or sees_all(user)
            or (user is not None and obj.submitted_by_id == user.pk)
        )
        data = found.to_dict(name_reviewer=visible)
        if not visible:
            data["detection"] = None
        return data

    def get_experts(self, obj: Detection) -> dict[str, float]:
        return obj.expert_probabilities

    def get_source_title(self, obj: Detection) -> str:
        """The watched object's title ("" for API uploads and deleted objects)."""
        return obj.source_description()[0]

    def get_source_admin_url(self, obj: Detection) -> str | None:
        """Where the watched object is edited (the CMS's own screen where there is one)."""
        url = obj.source_description()[1]
        request = self.context.get("request")
        return request.build_absolute_uri(url) if url and request else url

    def get_heatmap_available(self, obj: Detection) -> bool:
        return bool(obj.heatmap)

    def get_advisory(self, obj: Detection) -> str:
        return ADVISORY


class SubmitSerializer(serializers.Serializer):
    """Either a multipart `file` or a `url` (JSON or form), not both."""

    file = serializers.FileField(required=False, allow_empty_file=True, use_url=False)
    url = serializers.URLField(required=False, max_length=2048)

    def validate(self, attrs: dict) -> dict:
        has_file, has_url = attrs.get("file") is not None, bool(attrs.get("url"))
        if has_file and has_url:
            raise serializers.ValidationError("Give either an image file or a URL, not both.")
        if not (has_file or has_url):
            raise serializers.ValidationError("Send an image as multipart `file` or a `url`.")
        if has_url and attrs["url"].split(":", 1)[0].lower() not in ("http", "https"):
            raise serializers.ValidationError("Only http and https URLs can be fetched.")
        return attrs


class ReviewSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Detection.Decision.choices)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
