"""The one public scoring API: `Detector.score`, `score_many` and `score_url`."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .clip_rule import ClipRule, load_rule
from .errors import HumanmadeError, ImageError, WeightsError
from .experts.clip import ClipEncoder, ClipExpert
from .heatmap import Heatmap, build_heatmap
from .intake import DecodedImage, ImageSource, IntakeLimits, decode_image, load_image, read_bytes
from .library_notes import library_notes
from .memory import release_freed_memory
from .model_files import file_sha256, require_clip_model
from .provenance import Evidence, combine, read_evidence
from .stability import stability_variants
from .tiling import MIN_SIDE, Tile, check_min_size, cut_tiles, plan_tiles
from .verdict import Band, BandCutoffs, DecidedBy, ImageFacts, Verdict
from .weights import ClipSpec, LoadedWeights, default_weights_path, load_weights

if TYPE_CHECKING:
    from .clip_verdict import ClipVerdict
    from .fetch import FetchPolicy
    from .video import VideoLimits

DEFAULT_MAX_TILES = 16
# Log-odds: a score this close to a cut-off is re-checked on re-saved and resized copies.
DEFAULT_STABILITY_MARGIN = 1.0


def onnx_providers(device: str | None) -> tuple[str, ...]:
    """ONNX Runtime providers for a device name: cpu, cuda (or cuda:N), or auto."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    name = (device or "cpu").split(":")[0]
    if name == "cpu":
        return ("CPUExecutionProvider",)
    if name in ("cuda", "auto") and "CUDAExecutionProvider" in available:
        return ("CUDAExecutionProvider", "CPUExecutionProvider")
    if name == "auto":
        return ("CPUExecutionProvider",)
    raise ValueError(
        f"device {device!r} is not available to ONNX Runtime here (it offers "
        f"{', '.join(available)}); for a GPU install the gpu extra (onnxruntime-gpu)"
    )


def load_clip_expert(
    spec: ClipSpec, path: Path | None = None, providers: tuple[str, ...] = ("CPUExecutionProvider",)
) -> ClipExpert:
    """The CLIP expert a release describes, on the cached encoder it was trained with."""
    path = require_clip_model(path)
    actual = file_sha256(path)
    if actual != spec.encoder_sha256:
        raise WeightsError(
            f"The CLIP model at {path} (sha256 {actual[:12]}…) is not the one these weights "
            f"were trained with ({spec.encoder_sha256[:12]}…). Run `humanmade setup` again."
        )
    return ClipExpert(
        ClipEncoder(path, blocks=spec.blocks, providers=providers), spec.head, spec.max_crops
    )


def _check_size(decoded: DecodedImage) -> None:
    check_min_size(decoded.width, decoded.height)


class Detector:
    """Scores images for signs of AI generation. Thread-safe; weights load once, lazily.

    `weights`: a .safetensors path (default: `$HUMANMADE_WEIGHTS` or the committed release).
    `expected_sha256`: verify against this instead of the model card beside the weights.
    `cutoffs`: band cut-offs; by default those stored with the weights (see `humanmade
    calibrate`), which are 0.20/0.80 unless the weights say otherwise.
    `stability_check`: also score a re-encoded and a rescaled copy (with fewer tiles); when
    the band flips between them, the verdict is `uncertain` and says why. Only images whose
    score lies within `stability_margin` (in log-odds) of a cut-off are checked; None checks
    every image.
    `clip_model`: the CLIP encoder file for releases with a CLIP expert (default
    `$HUMANMADE_CLIP_MODEL` or the one `humanmade setup` caches); `clip_crops`: at most this
    many native 224 px crops per image for it (default: the release's own cap).
    `provenance`: read what the file says about its origin (C2PA, XMP, EXIF, generator
    parameters, watermarks); strong AI evidence moves the band to `likely_ai`, and nothing
    in metadata moves it toward `likely_human`.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        expected_sha256: str | None = None,
        cutoffs: BandCutoffs | None = None,
        max_tiles: int = DEFAULT_MAX_TILES,
        limits: IntakeLimits | None = None,
        fetch_policy: FetchPolicy | None = None,
        device: str | None = "cpu",
        stability_check: bool = True,
        stability_margin: float | None = DEFAULT_STABILITY_MARGIN,
        provenance: bool = True,
        clip_model: str | Path | None = None,
        clip_crops: int | None = None,
        library_notes: bool = False,
    ) -> None:
        if max_tiles < 1:
            raise ValueError("max_tiles must be at least 1")
        if clip_crops is not None and clip_crops < 1:
            raise ValueError("clip_crops must be at least 1")
        self.weights_path = Path(weights) if weights is not None else default_weights_path()
        self.expected_sha256 = expected_sha256
        self._cutoffs = cutoffs
        self.max_tiles = max_tiles
        self.limits = limits or IntakeLimits()
        self.fetch_policy = fetch_policy
        self.device = device or "cpu"
        self.stability_check = stability_check
        self.provenance = provenance
        self.clip_model = Path(clip_model) if clip_model is not None else None
        self.clip_crops = clip_crops
        self.stability_margin = stability_margin
        # The image library's warnings become each verdict's `notes` (see library_notes.py:
        # for single-threaded callers, such as the command line).
        self.library_notes = library_notes
        self._loaded: LoadedWeights | None = None
        self._clip_rule: ClipRule | None = None
        self._clip: ClipExpert | None = None
        self._trace_device = None
        self._lock = threading.Lock()

    def load(self) -> LoadedWeights:
        """Load and verify the weights now (otherwise the first score does it)."""
        return self.loaded

    @property
    def loaded(self) -> LoadedWeights:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    loaded = load_weights(self.weights_path, self.expected_sha256)
                    if loaded.model is not None:
                        from .experts.trace import torch_device

                        self._trace_device = torch_device(self.device)
                        loaded.model.to(self._trace_device)
                    if loaded.clip is not None:
                        self._clip = load_clip_expert(
                            loaded.clip, self.clip_model, onnx_providers(self.device)
                        )
                    self._loaded = loaded
        return self._loaded

    @property
    def clip_rule(self) -> ClipRule:
        """How this release turns a clip's frames into one probability (`clip_rule.py`)."""
        if self._clip_rule is None:
            loaded = self.loaded
            self._clip_rule = load_rule(loaded.path, loaded.sha256)
        return self._clip_rule

    @property
    def model_version(self) -> str:
        return self.loaded.version

    @property
    def cutoffs(self) -> BandCutoffs:
        """The cut-offs given to the constructor, else the weights' own (loads them)."""
        return self._cutoffs if self._cutoffs is not None else self.loaded.cutoffs

    @cutoffs.setter
    def cutoffs(self, value: BandCutoffs | None) -> None:
        self._cutoffs = value

    def score(self, source: ImageSource, *, heatmap: bool = False) -> Verdict:
        """Score one image: a path, bytes, a binary file object or a PIL image.

        `heatmap`: also return the patch-probability map (`Verdict.heatmap`).
        """
        return self.score_many([source], heatmap=heatmap)[0]  # type: ignore[return-value]

    def score_video(self, source: ImageSource, *, limits: VideoLimits | None = None) -> ClipVerdict:
        """Score a video (MP4/MOV, WebM/Matroska, AVI) or an animated GIF, WebP or PNG: a
        bounded sample of its frames, decoded in a child process, each scored like an image;
        one verdict by the rule in `detector_core.clip_verdict`. Errors are `ImageError`s
        (`VideoError` for what only videos can get wrong). See `detector_core.video`."""
        from .clip_verdict import score_clip
        from .video import DEFAULT_VIDEO_LIMITS

        return score_clip(self, source, limits or DEFAULT_VIDEO_LIMITS)

    def score_url(self, url: str, *, heatmap: bool = False) -> Verdict:
        """Fetch an http(s) URL safely (see `fetch.FetchPolicy`) and score what it holds."""
        from .fetch import FetchPolicy, fetch_url

        started = time.perf_counter()
        fetched = fetch_url(url, self.fetch_policy or FetchPolicy())
        said: list[str] = []
        with library_notes(said if self.library_notes else None):
            decoded = decode_image(fetched.data, self.limits)
        _check_size(decoded)
        pixels = decoded.width * decoded.height
        try:
            verdict = self._score_decoded([(decoded, fetched.data)], started, heatmap)[0]
            return replace(verdict, notes=_merged(said, verdict.notes)) if said else verdict
        finally:
            del decoded, fetched
            release_freed_memory(pixels)

    def score_many(
        self,
        sources: Iterable[ImageSource],
        *,
        return_errors: bool = False,
        heatmap: bool = False,
    ) -> list[Verdict | HumanmadeError]:
        """Score several images, batching tiles of equal shape across images.

        With `return_errors`, a bad input yields its `HumanmadeError` in its place instead of
        raising, so one broken file does not cost the rest of the batch.
        """
        started = time.perf_counter()
        results: list[Verdict | HumanmadeError | None] = []
        decoded: list[tuple[DecodedImage, bytes]] = []
        positions: list[int] = []
        notes: list[list[str]] = []
        for source in sources:
            said: list[str] = []
            try:
                with library_notes(said if self.library_notes else None):
                    image, data = self._decode(source)
                _check_size(image)
            except HumanmadeError as exc:  # its message says more than the library's words
                if not return_errors:
                    raise
                results.append(exc)
                continue
            positions.append(len(results))
            results.append(None)
            decoded.append((image, data))
            notes.append(said)
        try:
            verdicts: list[Verdict | HumanmadeError] = list(
                self._score_decoded(decoded, started, heatmap)
            )
        except WeightsError:
            raise
        except Exception:
            if not return_errors:
                raise
            # One image's failure must not cost the batch: score them one by one.
            verdicts = [self._score_alone(item, started, heatmap) for item in decoded]
        for pos, verdict, said in zip(positions, verdicts, notes, strict=True):
            if said and isinstance(verdict, Verdict):
                verdict = replace(verdict, notes=_merged(said, verdict.notes))
            results[pos] = verdict
        pixels = sum(image.width * image.height for image, _ in decoded)
        del decoded, verdicts
        release_freed_memory(pixels)  # the decoded images and their arrays are gone now
        return results  # type: ignore[return-value]

    def _score_alone(
        self, item: tuple[DecodedImage, bytes], started: float, heatmap: bool
    ) -> Verdict | HumanmadeError:
        try:
            return self._score_decoded([item], started, heatmap)[0]
        except WeightsError:
            raise
        except HumanmadeError as exc:
            return exc
        except Exception as exc:  # a bug met by this image only; say so in its place
            return ImageError(
                f"The image could not be scored (an internal error: {type(exc).__name__}: "
                f"{exc}); please report it."
            )

    def _decode(self, source: ImageSource) -> tuple[DecodedImage, bytes]:
        """The decoded image and its encoded bytes (empty for an in-memory PIL image)."""
        if isinstance(source, Image.Image):
            return load_image(source, self.limits), b""
        data = read_bytes(source, self.limits)
        return decode_image(data, self.limits), data

    def _score_decoded(
        self,
        decoded: Sequence[tuple[DecodedImage, bytes]],
        started: float,
        heatmap: bool = False,
    ) -> list[Verdict]:
        images = [image for image, _ in decoded]
        loaded = self.loaded
        cutoffs = self.cutoffs
        originals = self._expert_scores(
            [(np.asarray(image.image, dtype=np.uint8), image.image) for image in images],
            self.max_tiles,
            self.clip_crops,
        )
        probabilities = [loaded.probability(s.logits) for s in originals]
        # The stability copies cost two more passes; they can only change a verdict whose
        # score lies near a cut-off, so only those images pay for them.
        checked = [
            i
            for i, p in enumerate(probabilities)
            if self.stability_check and cutoffs.near(p, self.stability_margin)
        ]
        variant_jobs: list[tuple[int, str]] = []
        variant_inputs: list[tuple[np.ndarray, Image.Image]] = []
        for i in checked:
            for name, variant in stability_variants(images[i].image):
                if min(variant.shape[:2]) >= MIN_SIDE:
                    variant_jobs.append((i, name))
                    variant_inputs.append((variant, Image.fromarray(variant)))
        variant_scores = (
            self._expert_scores(variant_inputs, max(1, self.max_tiles // 4), 1)
            if variant_inputs
            else []
        )
        variants: dict[int, dict[str, float]] = defaultdict(dict)
        for (i, name), scores in zip(variant_jobs, variant_scores, strict=True):
            variants[i][name] = loaded.probability(scores.logits)
        elapsed_ms = (time.perf_counter() - started) * 1000.0 / max(1, len(images))
        verdicts = []
        for i, image in enumerate(images):
            scores, probability = originals[i], probabilities[i]
            band = cutoffs.band(probability)
            variant_probs = variants.get(i, {})
            flipped = {n: p for n, p in variant_probs.items() if cutoffs.band(p) != band}
            reasons: tuple[str, ...] = ()
            decided_by = DecidedBy.PIXELS
            if flipped:
                band = Band.UNCERTAIN
                decided_by = DecidedBy.INSTABILITY
                reasons = (
                    "unstable: the band changes when the image is "
                    + ", ".join(f"{n} ({p:.0%})" for n, p in flipped.items())
                    + f", against {probability:.0%} for the image as given",
                )
            evidence: tuple[Evidence, ...] = ()
            said: list[str] = []
            if self.provenance:
                with library_notes(said if self.library_notes else None):
                    evidence = read_evidence(decoded[i][1], image.image)
                combined, evidence_reasons = combine(probability, band, evidence, cutoffs)
                if combined is not band:
                    decided_by = DecidedBy.PROVENANCE
                band = combined
                reasons += evidence_reasons
            # The regions the verdict lists: the trace network's tiles where the release has
            # one, else the CLIP crops, each in its own expert's probability.
            region_expert = "trace" if scores.trace_maps else "clip"
            region_maps = scores.trace_maps or scores.clip_maps
            region_calibrate = loaded.expert_calibration(region_expert).probability
            driver = loaded.driver(scores.logits)
            verdicts.append(
                Verdict(
                    ai_probability=probability,
                    band=band,
                    model_version=loaded.version,
                    image=ImageFacts(
                        width=image.width,
                        height=image.height,
                        format=image.format,
                        sha256=image.sha256,
                        n_bytes=image.n_bytes,
                    ),
                    elapsed_ms=elapsed_ms,
                    tiles_scored=len(region_maps),
                    tile_probabilities=tuple(
                        float(region_calibrate(m.mean())) for m in region_maps
                    ),
                    unstable=bool(flipped),
                    variant_probabilities=tuple(variant_probs.items()),
                    reasons=reasons,
                    evidence=evidence,
                    expert_probabilities=tuple(loaded.expert_probabilities(scores.logits).items()),
                    decided_by=decided_by,
                    cutoffs=cutoffs,
                    notes=tuple(said),
                    heatmap=(self._heatmap(image, scores, driver) if heatmap else None),
                )
            )
        return verdicts

    def _heatmap(self, image: DecodedImage, scores: ExpertScores, expert: str) -> Heatmap:
        """The patch map of the expert that drives the score, in its own probabilities."""
        calibrate = self.loaded.expert_calibration(expert).probability
        if expert == "clip":
            boxes, maps = scores.clip_boxes, scores.clip_maps
        else:
            boxes, maps = scores.trace_tiles, scores.trace_maps
        return build_heatmap(image.width, image.height, boxes, maps, calibrate, expert=expert)

    def _expert_scores(
        self,
        inputs: Sequence[tuple[np.ndarray, Image.Image]],
        max_tiles: int,
        clip_crops: int | None,
    ) -> list[ExpertScores]:
        """Every expert's raw logit and patch maps for each (pixels, PIL image) input."""
        loaded = self.loaded
        out = [ExpertScores(logits={}) for _ in inputs]
        if loaded.model is not None:
            self._trace_scores(inputs, max_tiles, out)
        if self._clip is not None:
            for (_, image), scores in zip(inputs, out, strict=True):
                logit, boxes, clip_maps = self._clip.score(image, clip_crops)
                scores.logits["clip"] = logit
                scores.clip_boxes, scores.clip_maps = boxes, clip_maps
        return out

    def _trace_scores(
        self,
        inputs: Sequence[tuple[np.ndarray, Image.Image]],
        max_tiles: int,
        out: list[ExpertScores],
    ) -> None:
        """The trace network's tiles, batched across inputs by tile shape (torch)."""
        from .experts.trace import tile_patch_logits

        loaded = self.loaded
        plans = [
            plan_tiles(px.shape[1], px.shape[0], loaded.tile_size, max_tiles) for px, _ in inputs
        ]
        by_shape: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = defaultdict(list)
        for j, ((pixels, _), tiles) in enumerate(zip(inputs, plans, strict=True)):
            for tile in cut_tiles(pixels, tiles):
                by_shape[tile.shape[:2]].append((j, tile))
        maps: list[list[np.ndarray]] = [[] for _ in inputs]
        for entries in by_shape.values():
            patch = tile_patch_logits(
                loaded.model, np.stack([t for _, t in entries]), self._trace_device
            )
            for (j, _), patch_map in zip(entries, patch, strict=True):
                maps[j].append(patch_map)
        for j, scores in enumerate(out):
            scores.logits["trace"] = float(np.mean([m.mean() for m in maps[j]]))
            scores.trace_tiles, scores.trace_maps = plans[j], maps[j]

    def expert_logits(self, pixels: np.ndarray) -> dict[str, float]:
        """Each expert's raw logit for an RGB uint8 array, as `score` computes them before
        the stability check and provenance: what evaluation and the release gate compare."""
        return self._expert_scores(
            [(pixels, Image.fromarray(pixels))], self.max_tiles, self.clip_crops
        )[0].logits


@dataclass
class ExpertScores:
    """One image's raw logit per expert, and where each expert looked."""

    logits: dict[str, float]
    trace_tiles: list[Tile] = field(default_factory=list)
    trace_maps: list[np.ndarray] = field(default_factory=list)
    clip_boxes: list[Tile] = field(default_factory=list)
    clip_maps: list[np.ndarray] = field(default_factory=list)


_default: Detector | None = None
_default_lock = threading.Lock()


def default_detector() -> Detector:
    """One shared Detector per process, with the default weights."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Detector()
    return _default


def _merged(first: list[str], then: tuple[str, ...]) -> tuple[str, ...]:
    """Notes in order, each once (decoding and provenance may read the same damaged EXIF)."""
    return tuple(dict.fromkeys((*first, *then)))


def score(source: ImageSource) -> Verdict:
    return default_detector().score(source)


def score_url(url: str) -> Verdict:
    return default_detector().score_url(url)
