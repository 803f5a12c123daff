"""Scorers: what turns image bytes or a URL into a `ScoreResult`, without blocking the loop.

Two implementations share one small interface (`Scorer`), so cogs never know which one runs:

- `LocalScorer` wraps a `detector_core.Detector`; every call runs in a bounded thread pool
  (`ThreadedScorer`), and an `asyncio.Semaphore` keeps the queue of waiting jobs in the
  event loop rather than in the pool, so a flood of images cannot pile up work unboundedly.
- `RemoteScorer` asks the Django app's REST API instead, so many bots can share one scoring
  server: `POST /api/detections/` (a multipart file or JSON `{"url": ...}`), then poll the
  `Location` it answers with until the detection is finished.

Every failure is a `detector_core.errors.HumanmadeError` subclass whose message is for people.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp

from detector_core.errors import FileTooLargeError, HumanmadeError, ImageError
from detector_core.headline import DecidedBy, headline, reasons_beyond_evidence
from detector_core.verdict import Band, BandCutoffs

if TYPE_CHECKING:
    from detector_core import Detector, Verdict
    from detector_core.clip_verdict import ClipVerdict

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "LocalScorer",
    "RemoteScorer",
    "ScoreResult",
    "Scorer",
    "ScoringUnavailableError",
    "ThreadedScorer",
]


class ScoringUnavailableError(HumanmadeError):
    """The scorer cannot answer right now (remote server down, refused the token, busy)."""


_DECISION_LABELS = {"human_made": "human-made", "ai_generated": "AI-generated"}


@dataclass(frozen=True)
class ScoreResult:
    """What the bot needs from a verdict, whichever scorer produced it."""

    ai_probability: float
    band: Band
    model_version: str
    reasons: tuple[str, ...] = ()
    # Provenance evidence read from the file, one line each: "[strong AI] ... (where)".
    evidence: tuple[str, ...] = ()
    # The server's review flag in remote mode ("needs_review"); informational.
    needs_review: bool = False
    # The engine's headline (`Verdict.summary()`), which says what decided the band.
    headline: str = ""
    decided_by: DecidedBy = DecidedBy.PIXELS
    # A person's decision on this picture (remote mode: the server matched the same bytes or
    # a near-duplicate that a reviewer decided): "human_made", "ai_generated" or "".
    decision: str = ""

    @property
    def confirmed_human(self) -> bool:
        return self.decision == "human_made"

    def model_summary(self) -> str:
        """The engine's headline; 'AI-generated: 87% (likely AI)' where none was given."""
        if self.headline:
            return self.headline
        return headline(self.ai_probability, self.band, DecidedBy.PIXELS, BandCutoffs())

    def summary(self) -> str:
        """A reviewer's decision first where there is one, then the model's headline."""
        label = _DECISION_LABELS.get(self.decision)
        if label is None:
            return self.model_summary()
        return f"Confirmed {label} by a reviewer (the model said: {self.model_summary()})"

    @classmethod
    def from_verdict(cls, verdict: Verdict) -> ScoreResult:
        return cls(
            ai_probability=verdict.ai_probability,
            band=verdict.band,
            model_version=verdict.model_version,
            headline=verdict.summary(),
            decided_by=verdict.decided_by,
            reasons=tuple(
                reasons_beyond_evidence(verdict.reasons, [e.to_dict() for e in verdict.evidence])
            ),
            evidence=tuple(
                f"[{e.strength.label}] {e.summary} ({e.where})" for e in verdict.evidence
            ),
        )

    @classmethod
    def from_clip(cls, clip: ClipVerdict) -> ScoreResult:
        """A video's or animation's verdict; its headline says how much of it was seen."""
        return cls(
            ai_probability=clip.ai_probability,
            band=clip.band,
            model_version=clip.model_version,
            headline=clip.summary(),
            decided_by=clip.decided_by,
            reasons=clip.reasons,
        )

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> ScoreResult:
        """Build from a finished detection of the REST API; raises if it is malformed.

        cms_plugin's detection has `probability`, `band`, `decided_by`, `summary` and the
        engine's verdict as `evidence` (whose own `evidence` lists the provenance items).
        """
        result = body.get("result") if isinstance(body.get("result"), Mapping) else body
        engine = result.get("evidence") if isinstance(result.get("evidence"), Mapping) else {}
        try:
            raw = result.get("probability", result.get("ai_probability"))
            probability = float(raw)
            if not 0.0 <= probability <= 1.0:
                raise ValueError(probability)
            band = Band(result.get("band") or BandCutoffs().band(probability))
            decided_by = DecidedBy(result.get("decided_by") or engine.get("decided_by") or "pixels")
        except (KeyError, TypeError, ValueError):
            raise ScoringUnavailableError(
                "The scoring server sent an answer the bot does not understand."
            ) from None
        reasons = result.get("reasons") or engine.get("reasons") or ()
        evidence = engine.get("evidence") if engine else result.get("evidence")
        evidence = evidence if isinstance(evidence, list) else ()
        headline = result.get("summary") if isinstance(result.get("summary"), str) else ""
        decided = body.get("decision")
        decision = decided.get("value") if isinstance(decided, Mapping) else ""
        lines = [
            f"[{e.get('strength', 'evidence')}] {e['summary']} ({e.get('where', '?')})"
            for e in evidence
            if isinstance(e, Mapping) and e.get("summary")
        ]
        return cls(
            ai_probability=probability,
            band=band,
            model_version=str(result.get("model_version") or "unknown"),
            reasons=tuple(
                reasons_beyond_evidence(reasons, [e for e in evidence if isinstance(e, Mapping)])
            ),
            evidence=tuple(lines),
            needs_review=body.get("status") == "needs_review",
            headline=headline,
            decided_by=decided_by,
            decision=decision if decision in _DECISION_LABELS else "",
        )


class Scorer(Protocol):
    """The interface cogs use. Implementations must never block the event loop."""

    max_bytes: int

    async def score_bytes(self, data: bytes) -> ScoreResult: ...

    async def score_url(self, url: str) -> ScoreResult: ...

    async def model_version(self) -> str | None: ...

    async def close(self) -> None: ...


class ThreadedScorer:
    """Runs blocking scoring functions in a bounded thread pool.

    `workers` threads score at once; at most `workers` jobs are handed to the pool, and the
    rest wait on a semaphore in the event loop (cheap, cancellable, never a stalled gateway).
    """

    def __init__(
        self,
        score_bytes: Callable[[bytes], ScoreResult],
        score_url: Callable[[str], ScoreResult],
        *,
        workers: int = 1,
        max_bytes: int = 20 * 1024 * 1024,
        version: Callable[[], str] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._score_bytes = score_bytes
        self._score_url = score_url
        self._version = version
        self.workers = workers
        self.max_bytes = max_bytes
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="humanmade-score"
        )
        self._slots: asyncio.Semaphore | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._slots is None:  # created lazily so it binds to the running loop
            self._slots = asyncio.Semaphore(self.workers)
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def score_bytes(self, data: bytes) -> ScoreResult:
        if len(data) > self.max_bytes:
            raise FileTooLargeError(too_large_message(len(data), self.max_bytes))
        return await self._run(self._score_bytes, data)

    async def score_url(self, url: str) -> ScoreResult:
        return await self._run(self._score_url, url)

    async def model_version(self) -> str | None:
        if self._version is None:
            return None
        return await self._run(self._version)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class LocalScorer(ThreadedScorer):
    """Scores with a `detector_core.Detector` in this process (the default mode)."""

    def __init__(self, detector: Detector, *, workers: int = 1) -> None:
        self.detector = detector
        super().__init__(
            functools.partial(score_media, detector),
            functools.partial(score_media_url, detector),
            workers=workers,
            max_bytes=min(detector.limits.max_bytes, _fetch_cap(detector)),
            version=lambda: detector.model_version,
        )


def score_media(detector: Detector, data: bytes) -> ScoreResult:
    """An image's verdict, or a video's or animated image's from its sampled frames (their
    decoding runs in the engine's bounded child process, never in the bot's)."""
    from detector_core.video import is_moving_image

    if is_moving_image(data):
        return ScoreResult.from_clip(detector.score_video(data))
    return ScoreResult.from_verdict(detector.score(data))


def score_media_url(detector: Detector, url: str) -> ScoreResult:
    """A URL fetched with the engine's safe fetch, then scored as what its bytes are."""
    from detector_core.fetch import FetchPolicy, fetch_url

    return score_media(detector, fetch_url(url, detector.fetch_policy or FetchPolicy()).data)


def _fetch_cap(detector: Detector) -> int:
    from detector_core.fetch import FetchPolicy

    return (detector.fetch_policy or FetchPolicy()).max_bytes


# --------------------------------------------------------------------------- remote mode

# "reviewed": the server hands back an earlier, decided detection of the same bytes.
_FINISHED = frozenset({"scored", "needs_review", "reviewed", "stale", "failed"})


class RemoteScorer:
    """Scores through the Django app's REST API (`HUMANMADE_API_URL` + `HUMANMADE_API_TOKEN`).

    The token travels only in the `Authorization: Token ...` header; it is never logged and
    never part of an error message.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        max_bytes: int = 20 * 1024 * 1024,
        timeout: float = 60.0,
        poll_interval: float = 0.5,
        max_poll_interval: float = 3.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the scoring server URL must be an http(s) URL")
        self.base_url = base_url.rstrip("/") + "/"
        self._token = token
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self._session = session
        self._owns_session = session is None
        self._last_version: str | None = None

    def __repr__(self) -> str:
        return f"RemoteScorer({self.base_url!r})"

    @property
    def endpoint(self) -> str:
        return urljoin(self.base_url, "api/detections/")

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Token {self._token}", "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
            self._owns_session = True
        return self._session

    async def score_bytes(self, data: bytes) -> ScoreResult:
        if len(data) > self.max_bytes:
            raise FileTooLargeError(too_large_message(len(data), self.max_bytes))
        form = aiohttp.FormData()
        form.add_field("file", data, filename="image", content_type="application/octet-stream")
        return await self._submit(data=form)

    async def score_url(self, url: str) -> ScoreResult:
        return await self._submit(json={"url": url})

    async def model_version(self) -> str | None:
        return self._last_version

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def _submit(self, **payload: Any) -> ScoreResult:
        try:
            async with asyncio.timeout(self.timeout):
                status, body, location = await self._request("POST", self.endpoint, **payload)
                if status not in (200, 201, 202):
                    raise _http_error(status, body)
                delay = self.poll_interval
                while body.get("status") not in _FINISHED:
                    if not location:
                        raise ScoringUnavailableError(
                            "The scoring server accepted the image but did not say where "
                            "to find the result."
                        )
                    await asyncio.sleep(delay)
                    delay = min(delay * 1.5, self.max_poll_interval)
                    status, body, _ = await self._request("GET", location)
                    if status != 200:
                        raise _http_error(status, body)
        except TimeoutError:
            raise ScoringUnavailableError(
                f"The scoring server did not finish within {self.timeout:g} s; try again later."
            ) from None
        if body["status"] == "failed":
            raise ImageError(str(body.get("error") or "The scoring server could not score it."))
        result = ScoreResult.from_api(body)
        self._last_version = result.model_version
        return result

    async def _request(
        self, method: str, url: str, **kwargs: Any
    ) -> tuple[int, dict[str, Any], str | None]:
        try:
            async with self._http().request(method, url, allow_redirects=False, **kwargs) as resp:
                location = resp.headers.get("Location")
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = {}
                if not isinstance(body, dict):
                    body = {}
                if location:
                    location = urljoin(str(resp.url), location)
                elif body.get("id") is not None and resp.status == 202:
                    location = urljoin(self.endpoint, f"{body['id']}/")
                if location and _origin(location) != _origin(self.base_url):
                    # The session sends the API token with every request: never elsewhere.
                    raise ScoringUnavailableError(
                        "The scoring server pointed the bot at another host; refused."
                    )
                return resp.status, body, location
        except aiohttp.ClientError as exc:
            log.warning("scoring server request failed: %s", type(exc).__name__)
            raise ScoringUnavailableError(
                "The scoring server cannot be reached right now; try again later."
            ) from None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _http_error(status: int, body: Mapping[str, Any]) -> HumanmadeError:
    detail = body.get("error") or body.get("detail")
    if isinstance(detail, list | tuple):
        detail = " ".join(str(d) for d in detail)
    if not detail:
        for value in body.values():  # DRF field errors: {"file": ["..."]}
            if isinstance(value, list) and value:
                detail = str(value[0])
                break
    if status == 413:
        return FileTooLargeError(str(detail or "The image is too large for the scoring server."))
    if status in (400, 415, 422):
        return ImageError(str(detail or "The scoring server could not use this image."))
    if status in (401, 403):
        return ScoringUnavailableError(
            "The scoring server refused the bot's API token; ask the bot's operator to check it."
        )
    if status == 429:
        return ScoringUnavailableError("The scoring server is busy; try again in a minute.")
    return ScoringUnavailableError(f"The scoring server answered {status}; try again later.")


def too_large_message(n_bytes: int, limit: int) -> str:
    """The wording the engine uses for an oversized file."""
    return f"The file is {describe_size(n_bytes)}; the limit is {describe_size(limit)}."


def describe_size(n: int) -> str:
    """1536 -> '2 KB', 31457280 -> '30 MB'."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"
