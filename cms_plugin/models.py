"""What was scored, what the engine said, and what a person decided."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from detector_core.headline import DecidedBy, headline, percent_in_band
from detector_core.verdict import Band, BandCutoffs

REVIEW_PERMISSION = "cms_plugin.review_detection"


def _upload_to(instance: Detection, filename: str) -> str:
    from .conf import humanmade_settings

    return f"{humanmade_settings.UPLOAD_TO}/uploads/{timezone.now():%Y/%m}/{filename}"


def _heatmap_to(instance: Detection, filename: str) -> str:
    from .conf import humanmade_settings

    return f"{humanmade_settings.UPLOAD_TO}/heatmaps/{timezone.now():%Y/%m}/{filename}"


class Detection(models.Model):
    """One image to score: a watched object's file, a standalone upload, or a URL.

    The same bytes are scored once: a second Detection of bytes already scored by the same
    model version takes that result (`evidence["deduplicated_from"]`). The image file itself
    is never modified or deleted.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SCORING = "scoring", "scoring"
        SCORED = "scored", "scored"
        NEEDS_REVIEW = "needs_review", "needs review"
        REVIEWED = "reviewed", "reviewed"
        FAILED = "failed", "failed"
        # The watched object's file was replaced, or the object deleted, before a decision.
        STALE = "stale", "stale (image replaced or deleted)"

    class Band(models.TextChoices):
        LIKELY_HUMAN = "likely_human", "likely human"
        UNCERTAIN = "uncertain", "uncertain"
        LIKELY_AI = "likely_ai", "likely AI"

    class DecidedBy(models.TextChoices):
        PIXELS = DecidedBy.PIXELS.value, DecidedBy.PIXELS.label
        PROVENANCE = DecidedBy.PROVENANCE.value, DecidedBy.PROVENANCE.label
        INSTABILITY = DecidedBy.INSTABILITY.value, DecidedBy.INSTABILITY.label

    class Decision(models.TextChoices):
        HUMAN_MADE = "human_made", "human-made"
        AI_GENERATED = "ai_generated", "AI-generated"

    # What is scored: a watched object's file field ...
    content_type = models.ForeignKey(
        ContentType, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    object_id = models.CharField(max_length=64, blank=True, db_index=True)
    content_object = GenericForeignKey("content_type", "object_id")
    field_name = models.CharField(max_length=100, blank=True)
    file_name = models.CharField(
        max_length=500, blank=True, help_text="Storage name of the watched file when queued."
    )
    # ... or a standalone upload (API, score_upload), or a URL (fetched into `upload`).
    upload = models.FileField(upload_to=_upload_to, max_length=500, blank=True)
    source_url = models.URLField(max_length=2048, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    # The perceptual hash (detector_core.near_duplicate) as a signed 64-bit integer, and its
    # four 16-bit parts (each minus 32768, to fit a smallint), indexed for the decided rows
    # (Meta.indexes): a near-duplicate of a decided image is found by exact matches on the
    # parts, never by scanning every row.
    phash = models.BigIntegerField(null=True, blank=True)
    phash_0 = models.SmallIntegerField(null=True, blank=True)
    phash_1 = models.SmallIntegerField(null=True, blank=True)
    phash_2 = models.SmallIntegerField(null=True, blank=True)
    phash_3 = models.SmallIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # When the last scoring message was published to the broker (None: never, the broker
    # was down). A row published since it last changed (queued_at >= updated_at) waits in
    # the queue, and the sweeper leaves it there while the queue still holds its message.
    queued_at = models.DateTimeField(null=True, blank=True, editable=False)

    probability = models.FloatField(null=True, blank=True)
    band = models.CharField(max_length=16, choices=Band.choices, blank=True, db_index=True)
    decided_by = models.CharField(
        max_length=16,
        choices=DecidedBy.choices,
        blank=True,
        help_text="What set the band: pixel score, provenance in the file, or instability.",
    )
    model_version = models.CharField(max_length=100, blank=True, db_index=True)
    evidence = models.JSONField(default=dict, blank=True)
    heatmap = models.FileField(upload_to=_heatmap_to, max_length=500, blank=True)
    # The verdict a re-score with a newer model replaced (manage.py humanmade_rescore).
    previous_probability = models.FloatField(null=True, blank=True)
    previous_band = models.CharField(max_length=16, choices=Band.choices, blank=True)
    previous_model_version = models.CharField(max_length=100, blank=True)
    rescored_at = models.DateTimeField(null=True, blank=True)

    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    note = models.TextField(blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        permissions = [("review_detection", "Can decide whether a detection is human-made")]
        indexes = [
            models.Index(fields=["content_type", "object_id", "field_name"]),
            # Only decided images are ever looked up by hash: partial indexes hold just them.
            *(
                models.Index(
                    fields=[f"phash_{i}"],
                    name=f"cms_plugin_decided_phash_{i}",
                    condition=models.Q(status="reviewed"),
                )
                for i in range(4)
            ),
        ]

    def __str__(self) -> str:
        return f"Detection #{self.pk} ({self.get_status_display()})"

    @property
    def is_final(self) -> bool:
        return self.status in (
            self.Status.SCORED,
            self.Status.NEEDS_REVIEW,
            self.Status.REVIEWED,
            self.Status.FAILED,
            self.Status.STALE,
        )

    @property
    def can_be_reviewed(self) -> bool:
        return self.status in (self.Status.SCORED, self.Status.NEEDS_REVIEW, self.Status.REVIEWED)

    @property
    def summary(self) -> str:
        """The engine's headline, which says what decided the band ('' until scored)."""
        if self.probability is None:
            return ""
        stored = (self.evidence or {}).get("summary")
        if self.decided_by and isinstance(stored, str) and stored:
            return stored
        # Scored before verdicts said what decided them: the pixel score's headline.
        try:
            band = Band(self.band)
        except ValueError:
            band = self.cutoffs.band(self.probability)
        return headline(self.probability, band, DecidedBy.PIXELS, self.cutoffs)

    @property
    def is_clip(self) -> bool:
        """A video or an animated image: its figure is a timeline, not a heatmap."""
        return isinstance(self.evidence, dict) and "media" in self.evidence

    @property
    def expert_probabilities(self) -> dict[str, float]:
        """Each expert's own probability of AI ("trace", "clip"), as the engine recorded it."""
        evidence = self.evidence if isinstance(self.evidence, dict) else {}
        experts = evidence.get("expert_probabilities")
        return dict(experts) if isinstance(experts, dict) else {}

    @property
    def cutoffs(self) -> BandCutoffs:
        """The band cut-offs this verdict was read against (0.20/0.80 when not recorded)."""
        from .presentation import cutoffs_of

        return cutoffs_of(self.evidence or {})

    @property
    def percent(self) -> str:
        """The pixel probability in percent, on the right side of every cut-off ('' if none)."""
        if self.probability is None:
            return ""
        return percent_in_band(self.probability, self.cutoffs)

    @property
    def band_colour(self) -> str:
        """'human', 'uncertain' or 'ai': the CSS class of the band's colour."""
        from .presentation import band_colour

        return band_colour(self.band)

    @property
    def band_changed(self) -> bool:
        """True when a re-score with a newer model moved the verdict to another band."""
        return bool(self.rescored_at and self.previous_band and self.previous_band != self.band)

    @property
    def band_change(self) -> str:
        """'uncertain → likely AI' for a re-score that changed the band, else ''."""
        if not self.band_changed:
            return ""
        return f"{band_label(self.previous_band)} → {band_label(self.band)}"

    def source_object(self) -> models.Model | None:
        """The watched object scored, None when there is none or it is gone."""
        if not self.content_type_id:
            return None
        model = self.content_type.model_class()
        if model is None:
            return None
        try:
            return model._default_manager.filter(pk=self.object_id).first()
        except (ValueError, TypeError, ValidationError):  # an id the model's pk cannot be
            return None

    def source_description(self) -> tuple[str, str | None]:
        """(the watched object's title, the URL of its admin page), once per instance."""
        if not hasattr(self, "_source_description"):
            from .sources import describe

            self._source_description = describe(self.source_object())
        return self._source_description

    def source_label(self) -> str:
        if self.content_type_id:
            return f"{self.content_type.app_label}.{self.content_type.model}#{self.object_id}"
        if self.source_url:
            return self.source_url
        return "upload"


def band_label(band: str) -> str:
    """'likely_ai' -> 'likely AI'; an unknown value as it is."""
    try:
        return str(Detection.Band(band).label)
    except ValueError:
        return band or "none"


class Batch(models.Model):
    """What one person sent to the checking desk at once: files, a ZIP's images, URLs."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Inputs refused before scoring (not an image, too large, not a URL), with the reason.
    refused = models.JSONField(default=list, blank=True)
    # The name each image was sent under (a file name, a ZIP member, a URL), by Detection id.
    names = models.JSONField(default=dict, blank=True)
    detections = models.ManyToManyField(Detection, related_name="batches", blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"Batch #{self.pk} by {self.created_by} on {self.created_at:%Y-%m-%d %H:%M}"


class Review(models.Model):
    """Every decision a person made, oldest first (the Detection holds the latest)."""

    detection = models.ForeignKey(Detection, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    decision = models.CharField(max_length=16, choices=Detection.Decision.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.reviewer} on {self.created_at:%Y-%m-%d}"
