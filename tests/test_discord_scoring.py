"""The bot's scorers: the local one (engine in worker threads) and the remote one (REST API).

The remote scorer is tested against a fake of the Django API served by aiohttp on
127.0.0.1, following the contract: POST /api/detections/ (multipart `file` or JSON `url`)
answers 202 with a Location; GET that location until the status is final.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import encode, make_image

from detector_core import Detector
from detector_core.errors import FileTooLargeError, ImageError, NotAnImageError
from detector_core.verdict import Band
from discord_bot.scoring import (
    LocalScorer,
    RemoteScorer,
    ScoreResult,
    ScoringUnavailableError,
    describe_size,
)

API_TOKEN = "remote-token-abcdef0123456789"
PNG = encode(make_image(96, 96))


class FakeAPI:
    """The detections endpoint of cms_plugin's REST API, as the contract describes it."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.auth: list[str | None] = []
        self.pending_polls = 1  # GETs answered "queued" before the result
        self.final: dict = {
            "status": "scored",
            "ai_probability": 0.91,
            "band": "likely_ai",
            "model_version": "remote-7",
            "evidence": [{"kind": "c2pa", "summary": "C2PA manifest names an AI tool."}],
            "error": None,
        }
        self.post_status = 202
        self.post_body: dict = {}
        self.polls = 0
        self.url = ""
        self.location = "/api/detections/17/"
        self.app = web.Application()
        self.app.router.add_post("/api/detections/", self.create)
        self.app.router.add_get("/api/detections/{id}/", self.detail)

    async def create(self, request: web.Request) -> web.Response:
        self.auth.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != f"Token {API_TOKEN}":
            return web.json_response({"detail": "Invalid token."}, status=401)
        if request.content_type == "application/json":
            self.received.append({"json": await request.json()})
        else:
            form = await request.post()
            self.received.append({"file": form["file"].file.read()})
        if self.post_status != 202:
            return web.json_response(self.post_body, status=self.post_status)
        return web.json_response(
            {"id": 17, "status": "queued"}, status=202, headers={"Location": self.location}
        )

    async def detail(self, request: web.Request) -> web.Response:
        self.auth.append(request.headers.get("Authorization"))
        self.polls += 1
        if self.polls <= self.pending_polls:
            return web.json_response({"id": 17, "status": "queued"})
        return web.json_response({"id": 17, **self.final})


@pytest_asyncio.fixture
async def api():
    fake = FakeAPI()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("/"))
    yield fake
    await server.close()


def remote(api: FakeAPI, **kwargs) -> RemoteScorer:
    kwargs.setdefault("poll_interval", 0.01)
    return RemoteScorer(api.url, kwargs.pop("token", API_TOKEN), **kwargs)


@pytest.mark.asyncio
async def test_remote_upload_polls_until_scored(api):
    scorer = remote(api)
    try:
        assert await scorer.model_version() is None
        result = await scorer.score_bytes(PNG)
    finally:
        await scorer.close()
    assert result == ScoreResult(
        0.91,
        Band.LIKELY_AI,
        "remote-7",
        reasons=(),
        evidence=("[evidence] C2PA manifest names an AI tool. (?)",),
        needs_review=False,
    )
    assert result.summary() == "AI-generated: 91% (likely AI)"
    assert api.received == [{"file": PNG}]
    assert api.polls == 2 and set(api.auth) == {f"Token {API_TOKEN}"}
    assert await scorer.model_version() == "remote-7"


@pytest.mark.asyncio
async def test_remote_url_and_needs_review(api):
    api.pending_polls = 0
    api.final = {**api.final, "status": "needs_review", "ai_probability": 0.5, "band": "uncertain"}
    scorer = remote(api)
    try:
        result = await scorer.score_url("https://images.example.org/a.png")
    finally:
        await scorer.close()
    assert api.received == [{"json": {"url": "https://images.example.org/a.png"}}]
    assert result.band is Band.UNCERTAIN and result.needs_review


@pytest.mark.asyncio
async def test_a_reviewers_decision_on_the_server_comes_first_in_the_bots_words(api):
    from discord_bot.utils.formatting import check_answer

    # The server handed back a decided detection (the same picture was confirmed before).
    api.final = {
        **api.final,
        "status": "reviewed",
        "ai_probability": 0.91,
        "summary": "AI-generated: 91% (likely AI)",
        "decision": {"value": "human_made", "match": "near_duplicate", "distance": 2},
    }
    scorer = remote(api)
    try:
        result = await scorer.score_bytes(PNG)
    finally:
        await scorer.close()
    assert result.decision == "human_made" and result.confirmed_human
    answer = check_answer([("photo.jpg", result)])
    assert answer.startswith("**Confirmed human-made by a reviewer")
    assert answer.index("Confirmed human-made") < answer.index("AI-generated: 91%")
    undecided = ScoreResult.from_api({**api.final, "decision": None})
    assert undecided.decision == "" and undecided.summary() == "AI-generated: 91% (likely AI)"


@pytest.mark.asyncio
async def test_remote_failures_become_messages_for_people(api):
    api.final = {"status": "failed", "error": "The file is not an image (it looks like text)."}
    scorer = remote(api)
    try:
        with pytest.raises(ImageError, match="looks like text"):
            await scorer.score_bytes(PNG)
        api.post_status, api.post_body = 413, {"detail": "The file is 60 MB; the limit is 50 MB."}
        with pytest.raises(FileTooLargeError, match="60 MB"):
            await scorer.score_bytes(PNG)
        api.post_status, api.post_body = 400, {"file": ["Upload a valid image."]}
        with pytest.raises(ImageError, match="Upload a valid image"):
            await scorer.score_bytes(PNG)
        api.post_status, api.post_body = 503, {}
        with pytest.raises(ScoringUnavailableError, match="answered 503"):
            await scorer.score_bytes(PNG)
        with pytest.raises(FileTooLargeError):  # refused before any upload
            await remote(api, max_bytes=10).score_bytes(PNG)
    finally:
        await scorer.close()


@pytest.mark.asyncio
async def test_remote_wrong_token_is_not_echoed(api):
    scorer = remote(api, token="wrong-token-xyz")
    try:
        with pytest.raises(ScoringUnavailableError) as info:
            await scorer.score_bytes(PNG)
    finally:
        await scorer.close()
    assert "refused the bot's API token" in str(info.value)
    assert "wrong-token-xyz" not in str(info.value) and "wrong-token-xyz" not in repr(scorer)


@pytest.mark.asyncio
async def test_remote_timeout_and_unreachable(api):
    api.pending_polls = 10**6
    scorer = remote(api, timeout=0.3)
    try:
        with pytest.raises(ScoringUnavailableError, match="did not finish within 0.3 s"):
            await scorer.score_bytes(PNG)
    finally:
        await scorer.close()
    # a port nobody listens on
    closed = RemoteScorer("http://127.0.0.1:9/", API_TOKEN, timeout=5)
    try:
        with pytest.raises(ScoringUnavailableError, match="cannot be reached"):
            await closed.score_url("https://images.example.org/a.png")
    finally:
        await closed.close()


@pytest.mark.asyncio
async def test_remote_never_follows_a_location_to_another_host(api):
    api.location = "http://elsewhere.example/api/detections/17/"
    scorer = remote(api)
    try:
        with pytest.raises(ScoringUnavailableError, match="another host"):
            await scorer.score_bytes(PNG)
    finally:
        await scorer.close()
    assert api.polls == 0


def test_remote_needs_an_http_url():
    with pytest.raises(ValueError):
        RemoteScorer("scoring.local", API_TOKEN)


def test_malformed_api_results_are_refused():
    with pytest.raises(ScoringUnavailableError):
        ScoreResult.from_api({"status": "scored", "ai_probability": 7})
    result = ScoreResult.from_api({"status": "scored", "result": {"ai_probability": 0.1}})
    assert result.band is Band.LIKELY_HUMAN and result.model_version == "unknown"


@pytest.mark.asyncio
async def test_local_scorer_runs_the_engine_off_the_loop(tiny_weights):
    detector = Detector(tiny_weights, stability_check=False, provenance=False)
    scorer = LocalScorer(detector, workers=1)
    seen: list[str] = []
    score = detector.score

    def spy(source, **kwargs):
        seen.append(threading.current_thread().name)
        return score(source, **kwargs)

    detector.score = spy  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(scorer.score_bytes(PNG), scorer.score_bytes(PNG))
        assert results[0] == results[1] and 0.0 <= results[0].ai_probability <= 1.0
        assert results[0].model_version == "test-0" == await scorer.model_version()
        assert seen and all(name.startswith("humanmade-score") for name in seen)
        with pytest.raises(NotAnImageError):
            await scorer.score_bytes(b"definitely not an image")
        with pytest.raises(FileTooLargeError, match="the limit is 20 MB"):
            await scorer.score_bytes(b"\0" * (20 * 1024 * 1024 + 1))
    finally:
        await scorer.close()


def test_describe_size():
    assert describe_size(512) == "512 bytes"
    assert describe_size(4096) == "4 KB"
    assert describe_size(30 * 1024 * 1024) == "30 MB"
    assert describe_size(int(1.5 * 1024 * 1024)) == "1.5 MB"
