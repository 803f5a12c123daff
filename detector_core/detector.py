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
import torch
from PIL import Image

from .errors import HumanmadeError, ImageError, WeightsError
from .experts.clip import ClipEncoder, ClipExpert
from .experts.trace import PatchModel
from .heatmap import Heatmap, build_heatmap
from .intake import DecodedImage, ImageSource, IntakeLimits, decode_image, load_image, read_bytes
from .library_notes import library_notes
from .memory import release_freed_memory
from .model_files import file_sha256, require_clip_model
from .provenance import Evidence, combine, read_evidence
from .stability import stability_variants
from .tiling import MIN_SIDE, Tile, check_min_size, cut_tiles, plan_tiles
from .verdict import Band, BandCutoffs, DecidedBy, ImageFacts, Verdict
from .weights import ClipSpec, LoadedWeights, default_weights_path, load_weights, torch_device

if TYPE_CHECKING:
    from .fetch import FetchPolicy

DEFAULT_MAX_TILES = 16
DEFAULT_BATCH_TILES = 16
# Log-odds: a score this close to a cut-off is re-checked on re-saved and resized copies.
DEFAULT_STABILITY_MARGIN = 1.0


@torch.inference_mode()
def tile_patch_logits(
    model: PatchModel,
    tiles: np.ndarray,
    device: torch.device,
    batch_size: int = DEFAULT_BATCH_TILES,
) -> np.ndarray:
    """Raw patch-logit maps (N, h, w) for a stack of equally sized (N, H, W, 3) uint8 tiles."""
    out = []
    for start in range(0, len(tiles), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(tiles[start : start + batch_size]))
        batch = batch.to(device).permute(0, 3, 1, 2).float().div_(255.0)
        out.append(model.patch_logits(batch)[:, 0].float().cpu().numpy())
    return np.concatenate(out)


def tile_logits(
    model: PatchModel,
    tiles: np.ndarray,
    device: torch.device,
    batch_size: int = DEFAULT_BATCH_TILES,
) -> np.ndarray:
    """Raw logits for a stack of equally sized (N, H, W, 3) uint8 tiles: mean patch logit."""
    return tile_patch_logits(model, tiles, device, batch_size).mean(axis=(1, 2))


def image_logit(
    model: PatchModel,
    pixels: np.ndarray,
    tile_size: int,
    max_tiles: int,
    device: torch.device,
) -> tuple[float, np.ndarray]:
    """The image's raw logit (mean over its tiles) and the per-tile logits."""
    tiles = plan_tiles(pixels.shape[1], pixels.shape[0], tile_size, max_tiles)
    logits = tile_logits(model, cut_tiles(pixels, tiles), device)
    return float(logits.mean()), logits


def load_clip_expert(spec: ClipSpec, path: Path | None = None) -> ClipExpert:
    """The CLIP expert a release describes, on the cached encoder it was trained with."""
    path = require_clip_model(path)
    actual = file_sha256(path)
    if actual != spec.encoder_sha256:
        raise WeightsError(
            f"The CLIP model at {path} (sha256 {actual[:12]}…) is not the one these weights "
            f"were trained with ({spec.encoder_sha256[:12]}…). Run `humanmade setup` again."
        )
    return ClipExpert(ClipEncoder(path), spec.head, spec.max_crops)


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
        self.device = torch_device(device)
        self.stability_check = stability_check
        self.provenance = provenance
        self.clip_model = Path(clip_model) if clip_model is not None else None
        self.clip_crops = clip_crops
        self.stability_margin = stability_margin
        # The image library's warnings become each verdict's `notes` (see library_notes.py:
        # for single-threaded callers, such as the command line).
        self.library_notes = library_notes
        self._loaded: LoadedWeights | None = None
        self._clip: ClipExpert | None = None
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
                    loaded.model.to(self.device)
                    if loaded.clip is not None:
                        self._clip = load_clip_expert(loaded.clip, self.clip_model)
                    self._loaded = loaded
        return self._loaded

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
            trace_calibrate = loaded.expert_calibration("trace").probability
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
                    tiles_scored=len(scores.trace_maps),
                    tile_probabilities=tuple(
                        float(trace_calibrate(m.mean())) for m in scores.trace_maps
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
        plans = [
            plan_tiles(px.shape[1], px.shape[0], loaded.tile_size, max_tiles) for px, _ in inputs
        ]
        by_shape: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = defaultdict(list)
        for j, ((pixels, _), tiles) in enumerate(zip(inputs, plans, strict=True)):
            for tile in cut_tiles(pixels, tiles):
                by_shape[tile.shape[:2]].append((j, tile))
        maps: list[list[np.ndarray]] = [[] for _ in inputs]
        for entries in by_shape.values():
            patch = tile_patch_logits(loaded.model, np.stack([t for _, t in entries]), self.device)
            for (j, _), patch_map in zip(entries, patch, strict=True):
                maps[j].append(patch_map)
        out = []
        for j, (_, image) in enumerate(inputs):
            scores = ExpertScores(
                logits={"trace": float(np.mean([m.mean() for m in maps[j]]))},
                trace_tiles=plans[j],
                trace_maps=maps[j],
            )
            if self._clip is not None:
                logit, boxes, clip_maps = self._clip.score(image, clip_crops)
                scores.logits["clip"] = logit
                scores.clip_boxes, scores.clip_maps = boxes, clip_maps
            out.append(scores)
        return out

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
    trace_tiles: list[Tile]
    trace_maps: list[np.ndarray]
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
