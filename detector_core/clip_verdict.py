"""One verdict for a clip from its sampled frames' verdicts.

The clip's probability follows the release's clip rule (`clip_rule.py`): a statistic of
the frames' calibrated logits with a calibration fitted on labelled clips where the release
has one (`humanmade video-eval --rule-out`), else the mean of the frames' logits with the
image calibration. The verdict names the rule it used.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from .clip_rule import UNFITTED
from .errors import HumanmadeError, ImageError, VideoError
from .headline import headline, provenance_cause
from .verdict import Band, BandCutoffs, DecidedBy
from .video import (
    DEFAULT_VIDEO_LIMITS,
    MediaFacts,
    Sample,
    VideoLimits,
    on_disk,
    sample_on_disk,
)

if TYPE_CHECKING:
    from .detector import Detector
    from .intake import ImageSource
    from .provenance import Evidence
    from .verdict import Verdict

__all__ = ["AGGREGATION_RULE", "ClipVerdict", "FrameScore", "clip_probability", "score_clip"]

AGGREGATION_RULE = UNFITTED.describe()
DRIVERS = 3  # frames named as having driven the verdict


@dataclass(frozen=True)
class FrameScore:
    time_s: float
    ai_probability: float
    band: Band
    width: int
    height: int
    unstable: bool = False


@dataclass(frozen=True)
class ClipVerdict:
    """An advisory judgement on a video or an animated image, from a sample of its frames."""

    ai_probability: float
    band: Band
    model_version: str
    media: MediaFacts
    frames: tuple[FrameScore, ...]
    # Indices into `frames` of those that pulled the clip's score furthest its way.
    drivers: tuple[int, ...]
    window_s: float  # the span of the clip the frames were spread over
    frames_decoded: int
    skipped_black: int
    skipped_duplicate: int
    frames_failed: int  # sampled frames the image detector refused (e.g. too small)
    stopped_early: str
    decode_ms: float
    score_ms: float
    cutoffs: BandCutoffs = field(default_factory=BandCutoffs, repr=False)
    rule: str = AGGREGATION_RULE
    reasons: tuple[str, ...] = ()
    decided_by: DecidedBy = DecidedBy.PIXELS
    # What the file says about its origin (C2PA for MP4/MOV; metadata for animations).
    evidence: tuple[Evidence, ...] = ()
    # JPEG thumbnails (THUMB_SIDE px) of the driving frames, in `drivers` order, for the
    # timeline figure; re-encoded by us, never part of `to_dict`.
    driver_thumbnails: tuple[bytes, ...] = field(default=(), repr=False, compare=False)

    @property
    def elapsed_ms(self) -> float:
        return self.decode_ms + self.score_ms

    @property
    def share_looked_at(self) -> float | None:
        """The share of the clip's length the frames were spread over (None if unknown)."""
        duration = self.media.duration_s
        if not duration:
            return None if self.stopped_early else 1.0
        return min(1.0, self.window_s / duration)

    def coverage(self) -> str:
        """'8 frames over 0:30 (all of the clip)' — what the verdict stands on."""
        n = len(self.frames)
        text = f"{n} frame{'s' * (n != 1)} over {_clock(self.window_s)}"
        share = self.share_looked_at
        if share is None:
            text += " (the clip's full length is unknown)"
        elif share >= 0.995:
            text += " (all of the clip)"
        else:
            text += f" ({share:.0%} of the clip's {_clock(self.media.duration_s or 0)})"
        if self.stopped_early:
            text += f"; sampling stopped at {self.stopped_early}"
        return text

    def summary(self) -> str:
        """'AI-generated: 12% (likely human) — video, 8 frames over 0:30 (all of the clip)';
        when the file's provenance set the band, it says so, as an image's headline does."""
        cause = ""
        if self.decided_by is DecidedBy.PROVENANCE:
            cause = provenance_cause([e.to_dict() for e in self.evidence])
        head = headline(self.ai_probability, self.band, self.decided_by, self.cutoffs, cause)
        what = "animation" if self.media.kind == "animation" else "video"
        return f"{head} — {what}, {self.coverage()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ai_probability": round(self.ai_probability, 6),
            "band": self.band.value,
            "summary": self.summary(),
            "decided_by": self.decided_by.value,
            "rule": self.rule,
            "cutoffs": {"human": self.cutoffs.human, "ai": self.cutoffs.ai},
            "model_version": self.model_version,
            "media": {
                "kind": self.media.kind,
                "container": self.media.container,
                "codec": self.media.codec,
                "width": self.media.width,
                "height": self.media.height,
                "duration_s": self.media.duration_s,
                "frame_count": self.media.frame_count,
                "sha256": self.media.sha256,
                "n_bytes": self.media.n_bytes,
            },
            "coverage": {
                "frames_scored": len(self.frames),
                "window_s": round(self.window_s, 3),
                "share_of_duration": (
                    None if self.share_looked_at is None else round(self.share_looked_at, 4)
                ),
                "frames_decoded": self.frames_decoded,
                "skipped_black": self.skipped_black,
                "skipped_duplicate": self.skipped_duplicate,
                "frames_failed": self.frames_failed,
                "stopped_early": self.stopped_early,
            },
            "frames": [
                {
                    "time_s": f.time_s,
                    "ai_probability": round(f.ai_probability, 6),
                    "band": f.band.value,
                    "width": f.width,
                    "height": f.height,
                    "unstable": f.unstable,
                    "driver": i in self.drivers,
                }
                for i, f in enumerate(self.frames)
            ],
            "drivers": list(self.drivers),
            "decode_ms": round(self.decode_ms, 2),
            "score_ms": round(self.score_ms, 2),
            "elapsed_ms": round(self.elapsed_ms, 2),
            "reasons": list(self.reasons),
            "evidence": [e.to_dict() for e in self.evidence],
        }


def clip_probability(frame_probabilities: list[float]) -> float:
    """The unfitted rule: sigmoid of the mean of the frames' logits."""
    return UNFITTED.probability(frame_probabilities)


def drivers(frame_probabilities: list[float], clip: float, k: int = DRIVERS) -> tuple[int, ...]:
    """The `k` frames furthest toward the clip's side of 50%: the highest when the clip
    leans AI, the lowest when it leans human. In time order."""
    leans_ai = clip >= 0.5
    order = sorted(
        range(len(frame_probabilities)),
        key=lambda i: frame_probabilities[i],
        reverse=leans_ai,
    )
    return tuple(sorted(order[:k]))


def score_clip(
    detector: Detector, source: ImageSource, limits: VideoLimits = DEFAULT_VIDEO_LIMITS
) -> ClipVerdict:
    """Sample the clip's frames (bounded, in a child process) and score each with
    `detector.score_many`; the verdict follows the stated rule. With the detector's
    `provenance` on, the file's own claims are read too (C2PA in MP4/MOV; for animated
    images, what an image's metadata would say) and combined as for images."""
    with on_disk(source, limits) as disk:
        sample = sample_on_disk(disk, limits)
        evidence = _evidence(disk.path, sample) if detector.provenance else ()
    started = time.perf_counter()
    if not sample.frames:
        reason = (
            "every frame looked at is black"
            if sample.skipped_black
            else "no frame could be taken from it"
        )
        raise VideoError(f"The clip has nothing to score: {reason}.")
    results = detector.score_many([f.image for f in sample.frames], return_errors=True)
    scored: list[tuple[float, Verdict]] = []
    images = []
    failures: list[HumanmadeError] = []
    for frame, result in zip(sample.frames, results, strict=True):
        if isinstance(result, HumanmadeError):
            failures.append(result)
        else:
            scored.append((frame.time_s, result))
            images.append(frame.image)
    if not scored:
        first = failures[0]
        kind = type(first) if isinstance(first, ImageError) else VideoError
        raise kind(f"No frame of the clip could be scored: {first}")
    probabilities = [v.ai_probability for _, v in scored]
    rule = detector.clip_rule
    probability = rule.probability(probabilities)
    cutoffs = detector.cutoffs
    frames = tuple(
        FrameScore(
            time_s=t,
            ai_probability=v.ai_probability,
            band=cutoffs.band(v.ai_probability),
            width=v.image.width,
            height=v.image.height,
            unstable=v.unstable,
        )
        for t, v in scored
    )
    reasons: list[str] = []
    if failures:
        reasons.append(f"{len(failures)} sampled frame(s) could not be scored: {failures[0]}")
    band = cutoffs.band(probability)
    decided_by = DecidedBy.PIXELS
    if evidence:
        from .provenance import combine

        combined, evidence_reasons = combine(probability, band, evidence, cutoffs)
        if combined is not band:
            decided_by = DecidedBy.PROVENANCE
        band = combined
        reasons.extend(evidence_reasons)
    bands = {f.band for f in frames}
    if {Band.LIKELY_AI, Band.LIKELY_HUMAN} <= bands:
        reasons.append(
            "frames disagree: some are likely AI and some likely human (edited or mixed "
            "footage?); look at the timeline"
        )
    driving = drivers(probabilities, probability)
    return ClipVerdict(
        ai_probability=probability,
        band=band,
        model_version=scored[0][1].model_version,
        media=sample.media,
        frames=frames,
        drivers=driving,
        window_s=sample.window_s,
        frames_decoded=sample.frames_decoded,
        skipped_black=sample.skipped_black,
        skipped_duplicate=sample.skipped_duplicate,
        frames_failed=len(failures),
        stopped_early=sample.stopped_early,
        decode_ms=sample.decode_ms,
        score_ms=(time.perf_counter() - started) * 1000.0,
        cutoffs=cutoffs,
        rule=rule.describe(),
        reasons=tuple(reasons),
        decided_by=decided_by,
        evidence=tuple(evidence),
        driver_thumbnails=tuple(_thumbnail(images[i]) for i in driving),
    )


THUMB_SIDE = 240
# Animated images are read whole for their metadata, as images are; only up to this size.
EVIDENCE_MAX_BYTES = 64 * 1024 * 1024


def _evidence(path: str, sample: Sample) -> tuple[Evidence, ...]:
    """What the file says about its origin, in the same form as for images."""
    from .provenance import read_evidence
    from .provenance.c2pa_reader import read_c2pa_stream

    if sample.media.kind == "video":
        from .provenance.video_tags import read_video_tags

        found = read_video_tags(sample.tags, sample.media.container)
        if sample.media.container == "MP4/MOV":  # C2PA defines no Matroska embedding
            with open(path, "rb") as fh:
                found = read_c2pa_stream(fh, "video/mp4") + found
        order = {"strong_ai": 0, "invalid": 1, "weak_ai": 2, "context": 3}
        return tuple(sorted(found, key=lambda e: order.get(e.strength.value, 9)))
    if sample.media.n_bytes > EVIDENCE_MAX_BYTES:
        return ()
    with open(path, "rb") as fh:
        first = sample.frames[0].image if sample.frames else None
        return read_evidence(fh.read(), first)


def _thumbnail(image: Image.Image) -> bytes:
    small = image.copy()
    small.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _clock(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
