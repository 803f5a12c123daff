"""The Discord bot end to end, offline: dpytest fakes the gateway and Discord's HTTP API.

Scanning runs through dpytest's message events. App commands (which dpytest cannot reach)
are called through their callbacks with a small fake `Interaction`. Nothing contacts Discord.
The scorer is injected: a fake that decodes with the engine's real intake (so size and
format errors are the engine's) and calls a red image "AI-looking" and a green one
"human-looking"; one test uses the real `Detector` with tiny weights.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import discord
import discord.ext.test as dpytest
import discord.ext.test.backend as back
import discord.ext.test.factories as facts
import numpy as np
import pytest
from conftest import encode, make_image
from PIL import Image

from detector_core import Detector
from detector_core.errors import FetchError
from detector_core.intake import IntakeLimits, decode_image
from detector_core.verdict import Band, BandCutoffs
from discord_bot.bot import HumanmadeBot, default_intents
from discord_bot.cogs.check import Check
from discord_bot.cogs.config import REFUSED, Settings
from discord_bot.scoring import LocalScorer, ScoreResult, ThreadedScorer
from discord_bot.settings import BotSettings, Rate
from discord_bot.store import ActionMode, ConfigStore, GuildConfig, Scope
from discord_bot.utils.checks import Cooldowns
from discord_bot.utils.formatting import ADVISORY, REACTION

AI_PNG = encode(Image.new("RGB", (96, 96), (220, 30, 30)))
HUMAN_PNG = encode(Image.new("RGB", (96, 96), (30, 200, 30)))
AI_URL = "https://images.example.org/ai.png"
HUMAN_URL = "https://images.example.org/human.png"
TOKEN = "test.token-not-a-real-one"


# --------------------------------------------------------------------------- fakes


class FakeModel:
    """Blocking scoring functions for a `ThreadedScorer`: red means AI, green means human."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def _result(self, probability: float) -> ScoreResult:
        return ScoreResult(probability, BandCutoffs().band(probability), "fake-1")

    def _enter(self) -> None:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)  # blocking, as a real model is

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1

    def score_bytes(self, data: bytes) -> ScoreResult:
        self._enter()
        try:
            decoded = decode_image(data, IntakeLimits())
            red, green, _ = np.asarray(decoded.image, dtype=float).mean(axis=(0, 1))
            return self._result(0.93 if red > green else 0.04)
        finally:
            self._leave()

    def score_url(self, url: str) -> ScoreResult:
        self._enter()
        try:
            if url == AI_URL:
                return self._result(0.93)
            if url == HUMAN_URL:
                return self._result(0.04)
            raise FetchError(f"Could not resolve {url.split('/')[2]}: no such host.")
        finally:
            self._leave()

    def scorer(self, workers: int = 1, max_bytes: int = 20 * 1024 * 1024) -> ThreadedScorer:
        return ThreadedScorer(
            self.score_bytes,
            self.score_url,
            workers=workers,
            max_bytes=max_bytes,
            version=lambda: "fake-1",
        )


class FakeResponse:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bool]] = []
        self.deferred = False
        self._done = False

    def is_done(self) -> bool:
        return self._done

    async def send_message(
        self, content: str | None = None, *, ephemeral: bool = False, **_: object
    ) -> None:
        assert not self._done, "an interaction can be answered only once"
        self.messages.append((content or "", ephemeral))
        self._done = True

    async def defer(self, *, ephemeral: bool = False, thinking: bool = False) -> None:
        assert not self._done
        self.deferred = True
        self._done = True


class FakeFollowup:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bool]] = []

    async def send(
        self, content: str | None = None, *, ephemeral: bool = False, **_: object
    ) -> None:
        self.messages.append((content or "", ephemeral))


class FakeInteraction:
    """What the cogs use of `discord.Interaction`."""

    def __init__(self, user: discord.abc.User, guild: discord.Guild | None) -> None:
        self.user = user
        self.guild = guild
        self.guild_id = guild.id if guild else None
        self.response = FakeResponse()
        self.followup = FakeFollowup()
        self.command = None

    @property
    def answers(self) -> list[str]:
        return [text for text, _ in self.response.messages + self.followup.messages]

    @property
    def all_ephemeral(self) -> bool:
        return all(eph for _, eph in self.response.messages + self.followup.messages)


# --------------------------------------------------------------------------- harness


class Harness:
    def __init__(self, bot: HumanmadeBot, model: FakeModel | None, tmp: Path) -> None:
        self.bot = bot
        self.model = model
        self.tmp = tmp
        cfg = dpytest.get_config()
        self.guild = cfg.guilds[0]
        self.channel, self.other_channel, self.mod_log = cfg.channels[:3]
        self.member = cfg.members[0]
        self.moderator = cfg.members[1]
        mod_role = back.make_role(
            "Mods", self.guild, permissions=discord.Permissions(manage_guild=True).value
        )
        back.update_member(self.moderator, roles=[mod_role])
        self.moderator = self.guild.get_member(self.moderator.id)
        self._n = 0

    @property
    def store(self) -> ConfigStore:
        return self.bot.store

    def configure(self, **changes: object) -> GuildConfig:
        return self.store.update(self.guild.id, **changes)

    def file(self, data: bytes, name: str) -> Path:
        self._n += 1
        path = self.tmp / f"{self._n}-{name}"
        path.write_bytes(data)
        return path

    def attachment(
        self,
        data: bytes,
        name: str,
        content_type: str | None = "image/png",
        size: int | None = None,
    ) -> discord.Attachment:
        path = self.file(data, name)
        return discord.Attachment(
            state=back.get_state(),
            data=facts.make_attachment_dict(
                name,
                len(data) if size is None else size,
                path.as_uri(),
                path.as_uri(),
                content_type=content_type,
            ),
        )

    async def post(
        self,
        content: str = "",
        *,
        files: list[tuple[bytes, str]] = (),
        channel: discord.TextChannel | None = None,
        author: discord.Member | None = None,
    ) -> discord.Message:
        attachments = [self.attachment(data, name) for data, name in files]
        message = back.make_message(
            content, author or self.member, channel or self.channel, attachments=attachments
        )
        await dpytest.run_all_events()
        return message

    def interaction(self, user: discord.abc.User | None = None) -> FakeInteraction:
        return FakeInteraction(user or self.member, self.guild)

    @property
    def check_cog(self) -> Check:
        return self.bot.get_cog("Check")  # type: ignore[return-value]

    @property
    def settings_cog(self) -> Settings:
        return self.bot.get_cog("Settings")  # type: ignore[return-value]

    async def config(self, name: str, interaction: FakeInteraction, **kwargs: object) -> None:
        cog = self.settings_cog
        command = cog.config.get_command(name)
        assert command is not None, name
        await command.callback(cog, interaction, **kwargs)

    async def check(self, interaction: FakeInteraction, **kwargs: object) -> None:
        cog = self.check_cog
        await cog.check.callback(cog, interaction, **kwargs)


def settings_for(db: Path, **overrides: object) -> BotSettings:
    values: dict[str, object] = {
        "token": TOKEN,
        "db_path": db,
        "sync_commands": False,
        "defer_after": 2.0,
    }
    values.update(overrides)
    return BotSettings(**values)  # type: ignore[arg-type]


def test_intents():
    wanted = default_intents()
    assert wanted.message_content and wanted.guild_messages and not wanted.members


def new_bot(settings: BotSettings, scorer) -> HumanmadeBot:
    intents = default_intents()
    intents.members = True  # so dpytest's fake guild keeps its members in the cache
    return HumanmadeBot(
        settings=settings, scorer=scorer, store=ConfigStore(settings.db_path), intents=intents
    )


def _patch_reaction_events(state) -> None:
    # dpytest 0.7 builds reaction events without the "type" field discord.py 2.4+ reads.
    parse = state.parse_message_reaction_add

    def parse_message_reaction_add(data):
        data.setdefault("type", 0)
        return parse(data)

    state.parse_message_reaction_add = parse_message_reaction_add


async def start_bot(settings: BotSettings, scorer) -> HumanmadeBot:
    bot = new_bot(settings, scorer)
    await bot._async_setup_hook()
    dpytest.configure(bot, text_channels=["general", "art", "mod-log"], members=["alice", "mo"])
    _patch_reaction_events(back.get_state())
    await bot.setup_hook()
    return bot


@pytest.fixture
def make_harness(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dpytest writes the files the bot sends into the cwd
    # dpytest 0.7 reads a sent message's text only from a JSON payload; with files attached,
    # discord.py sends it as a multipart "payload_json" part instead. Hand it over.
    handle = discord.abc.handle_message_parameters

    def handle_message_parameters(*args, **kwargs):
        params = handle(*args, **kwargs)
        if params.payload is None and params.multipart:
            for part in params.multipart:
                if part.get("name") == "payload_json":
                    return params._replace(payload=json.loads(part["value"]))
        return params

    monkeypatch.setattr(discord.abc, "handle_message_parameters", handle_message_parameters)
    bots: list[HumanmadeBot] = []

    async def make(model: FakeModel | None = None, scorer=None, **overrides: object) -> Harness:
        model = model if model is not None or scorer is not None else FakeModel()
        settings = settings_for(tmp_path / "bot.sqlite3", **overrides)
        bot = await start_bot(settings, scorer or model.scorer(max_bytes=settings.max_bytes))
        bots.append(bot)
        return Harness(bot, model, tmp_path)

    yield make
    for bot in bots:  # (each test closes what it needs; this is the safety net)
        bot.store.close()


def drain() -> list[discord.Message]:
    """Everything the bot sent since the last drain, oldest first."""
    out = []
    try:
        while True:
            out.append(dpytest.get_message())
    except asyncio.QueueEmpty:
        return out


def reactions(message: discord.Message) -> list[str]:
    return [str(r.emoji) for r in message.reactions if r.me]


# --------------------------------------------------------------------------- scanning


@pytest.mark.asyncio
async def test_react_mode_marks_the_ai_image_and_leaves_the_human_one(make_harness):
    h = await make_harness()
    ai = await h.post("look", files=[(AI_PNG, "a.png")])
    human = await h.post("mine", files=[(HUMAN_PNG, "b.png")])
    assert reactions(ai) == [REACTION]
    assert reactions(human) == []
    assert drain() == []  # react mode says nothing in the channel
    assert h.model.calls == 2


class ConfirmedHumanModel(FakeModel):
    """The scoring server says a reviewer confirmed every picture human-made."""

    def _result(self, probability: float) -> ScoreResult:
        return ScoreResult(
            probability, BandCutoffs().band(probability), "fake-1", decision="human_made"
        )


@pytest.mark.asyncio
async def test_a_picture_a_reviewer_confirmed_human_made_is_never_acted_on(make_harness):
    h = await make_harness(ConfirmedHumanModel())
    h.configure(action=ActionMode.REPLY)
    message = await h.post("my painting", files=[(AI_PNG, "a.png")])
    assert h.model.calls == 1  # it was scored: the score said likely AI ...
    assert drain() == [] and reactions(message) == []  # ... but a person decided


@pytest.mark.asyncio
async def test_reply_mode_replies_with_the_summary_and_says_it_is_advisory(make_harness):
    h = await make_harness()
    h.configure(action=ActionMode.REPLY)
    await h.post("both", files=[(AI_PNG, "ai.png"), (HUMAN_PNG, "human.png")])
    (reply,) = drain()
    assert "AI-generated: 93% (likely AI)" in reply.content
    assert "ai.png" in reply.content and "human.png" not in reply.content
    assert ADVISORY in reply.content
    await h.post("only human", files=[(HUMAN_PNG, "human.png")])
    assert drain() == []


@pytest.mark.asyncio
async def test_log_mode_reports_to_the_mod_log_with_a_jump_link(make_harness):
    h = await make_harness()
    h.configure(action=ActionMode.LOG, mod_log_channel_id=h.mod_log.id)
    message = await h.post("hi", files=[(AI_PNG, "ai.png")])
    (report,) = drain()
    assert report.channel.id == h.mod_log.id
    assert message.jump_url in report.content
    assert "AI-generated: 93% (likely AI)" in report.content and ADVISORY in report.content
    assert reactions(message) == []
    await h.post("hi", files=[(HUMAN_PNG, "human.png")])
    assert drain() == []


@pytest.mark.asyncio
async def test_hold_mode_reports_with_the_image_then_deletes(make_harness):
    h = await make_harness()
    h.configure(action=ActionMode.HOLD, mod_log_channel_id=h.mod_log.id)
    message = await h.post("my art", files=[(AI_PNG, "ai.png")])
    (report,) = drain()
    assert report.channel.id == h.mod_log.id
    assert report.content.startswith("Held for review")
    assert "my art" in report.content
    assert [a.filename for a in report.attachments] == ["ai.png"]
    history = [m.id async for m in h.channel.history(limit=50)]
    assert message.id not in history
    kept = await h.post("mine", files=[(HUMAN_PNG, "human.png")])
    assert kept.id in [m.id async for m in h.channel.history(limit=50)]


@pytest.mark.asyncio
async def test_log_or_hold_without_a_mod_log_channel_only_reacts(make_harness):
    h = await make_harness()
    h.configure(action=ActionMode.HOLD)  # (the config command refuses this; the store allows it)
    message = await h.post("x", files=[(AI_PNG, "ai.png")])
    assert reactions(message) == [REACTION]
    assert message.id in [m.id async for m in h.channel.history(limit=50)]


@pytest.mark.asyncio
async def test_threshold_and_band_rules(make_harness):
    h = await make_harness()
    h.configure(threshold=0.95)
    assert reactions(await h.post(files=[(AI_PNG, "a.png")])) == []
    h.configure(threshold=0.03)
    assert reactions(await h.post(files=[(HUMAN_PNG, "h.png")])) == [REACTION]
    config = GuildConfig(1, min_band=Band.UNCERTAIN)
    assert config.should_act(0.5, Band.UNCERTAIN) and not config.should_act(0.1, Band.LIKELY_HUMAN)
    assert not GuildConfig(1).should_act(0.5, Band.UNCERTAIN)


@pytest.mark.asyncio
async def test_links_and_embeds_are_scored_through_the_scorer_url_path(make_harness):
    h = await make_harness()
    message = await h.post(f"see {HUMAN_URL} and <{AI_URL}> and https://example.org/page")
    assert reactions(message) == [REACTION]
    assert h.model.calls == 2  # the page link is not an image link
    embed = discord.Embed().set_image(url=AI_URL)
    msg = back.make_message("", h.member, h.channel, embeds=[embed])
    await dpytest.run_all_events()
    assert reactions(msg) == [REACTION]


@pytest.mark.asyncio
async def test_what_is_not_scanned(make_harness):
    h = await make_harness()
    role = back.make_role("Artists", h.guild)
    back.update_member(h.member, roles=[role])
    h.store.set_exempt(h.guild.id, role.id, True)
    assert reactions(await h.post(files=[(AI_PNG, "a.png")])) == []  # exempt role
    h.store.set_exempt(h.guild.id, role.id, False)

    h.store.set_watched(h.guild.id, h.channel.id, True)
    h.configure(scope=Scope.LISTED)
    assert reactions(await h.post(files=[(AI_PNG, "a.png")], channel=h.other_channel)) == []
    assert reactions(await h.post(files=[(AI_PNG, "a.png")])) == [REACTION]
    h.configure(scope=Scope.OFF)
    assert reactions(await h.post(files=[(AI_PNG, "a.png")])) == []
    h.configure(scope=Scope.ALL)

    data = facts.make_user_dict("otherbot", "0001", None, bot=True)
    bot_user = back.get_state().store_user(data)
    bot_member = back.make_member(bot_user, h.guild)
    assert reactions(await h.post(files=[(AI_PNG, "a.png")], author=bot_member)) == []

    # A PDF is not fetched at all; a .png that is not an image is sniffed and skipped quietly.
    pdf = h.attachment(b"%PDF-1.4 ...", "doc.pdf", content_type="application/pdf")
    msg = back.make_message("", h.member, h.channel, attachments=[pdf])
    await dpytest.run_all_events()
    fake_png = await h.post(files=[(b"just text, whatever the name says", "fake.png")])
    assert reactions(msg) == [] and reactions(fake_png) == []
    assert drain() == []
    assert h.model.calls == 2  # the listed channel's image, and fake.png (refused on sniffing)


@pytest.mark.asyncio
async def test_scan_cooldown_per_user(make_harness):
    h = await make_harness(scan_per_user=Rate(1, 60.0))
    assert reactions(await h.post(files=[(AI_PNG, "a.png")])) == [REACTION]
    assert reactions(await h.post(files=[(AI_PNG, "a.png")])) == []
    assert h.model.calls == 1
    assert reactions(await h.post(files=[(AI_PNG, "a.png")], author=h.moderator)) == [REACTION]


def test_cooldowns_window():
    now = [0.0]
    cd = Cooldowns(Rate(2, 10.0), clock=lambda: now[0])
    for _ in range(2):
        assert cd.retry_after("u") == 0.0
        cd.hit("u")
    assert cd.retry_after("u") == pytest.approx(10.0)
    assert cd.retry_after("other") == 0.0
    now[0] = 10.5
    assert cd.retry_after("u") == 0.0


# --------------------------------------------------------------------------- the event loop


async def _heartbeat(ticks: list[float], stop: asyncio.Event, every: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        ticks.append(loop.time())
        await asyncio.sleep(every)


def _longest_gap(ticks: list[float]) -> float:
    return max(b - a for a, b in zip(ticks, ticks[1:], strict=False))


@pytest.mark.asyncio
async def test_event_loop_keeps_ticking_while_a_slow_score_runs(make_harness):
    model = FakeModel(delay=1.0)
    h = await make_harness(model)
    ticks: list[float] = []
    stop = asyncio.Event()
    beat = asyncio.create_task(_heartbeat(ticks, stop))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    message = await h.post(files=[(AI_PNG, "a.png")])
    elapsed = time.monotonic() - started
    stop.set()
    await beat
    assert elapsed >= 1.0 and reactions(message) == [REACTION]
    assert all(name.startswith("humanmade-score") for name in model.threads)
    during = [t for t in ticks if t >= ticks[0] + 0.05]
    # ~100 ticks at 10 ms; a loop blocked by the score would show one gap of a second.
    assert len(during) >= 20
    assert _longest_gap(ticks) < 0.5


@pytest.mark.asyncio
async def test_the_heartbeat_would_catch_a_blocking_scorer():
    # The control for the test above: the same slow score run *on* the loop stalls the beat.
    ticks: list[float] = []
    stop = asyncio.Event()
    beat = asyncio.create_task(_heartbeat(ticks, stop))
    await asyncio.sleep(0.05)
    time.sleep(0.5)  # what calling the model directly in a handler would do
    await asyncio.sleep(0.05)
    stop.set()
    await beat
    assert _longest_gap(ticks) >= 0.45


@pytest.mark.asyncio
async def test_scoring_concurrency_is_bounded():
    model = FakeModel(delay=0.15)
    scorer = model.scorer(workers=2)
    results = await asyncio.gather(*(scorer.score_bytes(AI_PNG) for _ in range(6)))
    await scorer.close()
    assert [r.band for r in results] == [Band.LIKELY_AI] * 6
    assert model.max_active == 2


# --------------------------------------------------------------------------- /check and the menu


@pytest.mark.asyncio
async def test_check_attachment_answers_ephemerally(make_harness):
    h = await make_harness()
    inter = h.interaction()
    await h.check(inter, image=h.attachment(AI_PNG, "ai.png"))
    (answer,) = inter.answers
    assert "AI-generated: 93% (likely AI)" in answer and ADVISORY in answer
    assert inter.all_ephemeral and not inter.response.deferred
    inter = h.interaction()
    await h.check(inter, image=h.attachment(HUMAN_PNG, "h.png"))
    assert "No sign of AI generation found: 4%" in inter.answers[0]


@pytest.mark.asyncio
async def test_check_non_image_and_oversized_files_get_clear_messages(make_harness):
    h = await make_harness(max_bytes=4096)
    inter = h.interaction()
    await h.check(inter, image=h.attachment(b"just some text", "notes.png", "text/plain"))
    assert "not an image I can read" in inter.answers[0]
    assert "AI-generated" not in inter.answers[0]

    big = h.attachment(b"", "huge.png", size=30 * 1024 * 1024)
    big_path = Path(big.url.removeprefix("file://"))
    big_path.unlink()  # had the bot tried to download it, the read would fail differently
    inter = h.interaction()
    await h.check(inter, image=big)
    assert "too large to check" in inter.answers[0]
    assert "The file is 30 MB; the limit is 4 KB." in inter.answers[0]
    assert h.model.calls == 1  # only the text file reached the scorer (and was refused)


@pytest.mark.asyncio
async def test_check_url(make_harness):
    h = await make_harness()
    inter = h.interaction()
    await h.check(inter, url=f"  {AI_URL} ")
    assert "AI-generated: 93% (likely AI)" in inter.answers[0]
    inter = h.interaction()
    await h.check(inter, url="https://nowhere.invalid/x.png")
    assert inter.answers[0].startswith("I could not fetch that image.")
    for kwargs in ({}, {"url": AI_URL, "image": h.attachment(AI_PNG, "a.png")}):
        inter = h.interaction()
        await h.check(inter, **kwargs)
        assert inter.answers == ["Give me one image: attach a file, or paste a link."]


@pytest.mark.asyncio
async def test_check_defers_when_scoring_takes_time(make_harness):
    h = await make_harness(FakeModel(delay=0.3), defer_after=0.05)
    inter = h.interaction()
    await h.check(inter, image=h.attachment(AI_PNG, "ai.png"))
    assert inter.response.deferred
    assert inter.response.messages == []
    assert "AI-generated: 93% (likely AI)" in inter.followup.messages[0][0]
    assert inter.all_ephemeral


@pytest.mark.asyncio
async def test_check_cooldowns_per_user_and_per_guild(make_harness):
    h = await make_harness(check_per_user=Rate(1, 60.0), check_per_guild=Rate(2, 60.0))
    first, second = h.interaction(), h.interaction()
    await h.check(first, url=AI_URL)
    await h.check(second, url=AI_URL)
    assert "AI-generated" in first.answers[0]
    assert (
        second.answers[0].startswith("Too many checks") and "try again in 60 s" in second.answers[0]
    )
    other = h.interaction(h.moderator)
    await h.check(other, url=AI_URL)
    assert "AI-generated" in other.answers[0]
    carol = back.make_member(back.make_user("carol", "0003"), h.guild)
    third = h.interaction(carol)
    await h.check(third, url=AI_URL)
    assert third.answers[0].startswith("Too many checks")  # the guild's budget is spent
    assert h.model.calls == 2


@pytest.mark.asyncio
async def test_check_image_context_menu(make_harness):
    h = await make_harness()
    message = back.make_message(
        "two",
        h.member,
        h.channel,
        attachments=[h.attachment(AI_PNG, "ai.png"), h.attachment(HUMAN_PNG, "human.png")],
    )
    h.configure(scope=Scope.OFF)
    inter = h.interaction(h.moderator)
    await h.check_cog.menu.callback(inter, message)
    (answer,) = inter.answers
    assert "**AI-generated: 93% (likely AI)** — ai.png" in answer
    assert "**No sign of AI generation found: 4%** — human.png" in answer
    empty = back.make_message("no pictures", h.member, h.channel)
    inter = h.interaction()
    await h.check_cog.menu.callback(inter, empty)
    assert inter.answers[0].startswith("That message has no image")
    assert h.bot.tree.get_command("Check image", type=discord.AppCommandType.message)


@pytest.mark.asyncio
async def test_check_with_the_real_detector(make_harness, tiny_weights):
    detector = Detector(tiny_weights, stability_check=False, provenance=False)
    h = await make_harness(scorer=LocalScorer(detector))
    inter = h.interaction()
    await h.check(inter, image=h.attachment(encode(make_image(128, 96)), "photo.png"))
    assert inter.answers[0].startswith("**AI-generated: ")
    assert ADVISORY in inter.answers[0]
    inter = h.interaction()
    await h.check(inter, image=h.attachment(encode(make_image(8, 8)), "tiny.png"))
    assert inter.answers[0].startswith("I cannot check that image.")
    assert await h.bot.scorer.model_version() == "test-0"


# --------------------------------------------------------------------------- /humanmade


@pytest.mark.asyncio
async def test_command_tree_is_valid_for_discord(make_harness):
    h = await make_harness()
    payloads = [cmd.to_dict(h.bot.tree) for cmd in h.bot.tree.get_commands()]
    assert {p["name"] for p in payloads} == {"check", "humanmade", "Check image"}

    def walk(node: dict) -> None:
        assert node["name"] == node["name"].lower(), node["name"]
        assert 1 <= len(node["description"]) <= 100, node
        for option in node.get("options", []):
            walk(option)

    for payload in payloads:
        if payload["type"] != discord.AppCommandType.message.value:  # menus have no description
            walk(payload)


@pytest.mark.asyncio
async def test_config_commands_refuse_non_moderators(make_harness):
    h = await make_harness()
    before = h.store.get(h.guild.id)
    calls = {
        "show": {},
        "scope": {"scope": "off"},
        "watch": {"channel": h.channel},
        "unwatch": {"channel": h.channel},
        "action": {"mode": "reply"},
        "threshold": {"band": "uncertain", "percent": 10},
        "modlog": {"channel": h.mod_log},
        "exempt": {"role": h.guild.default_role},
        "unexempt": {"role": h.guild.default_role},
    }
    names = {c.name for c in h.settings_cog.config.commands}
    assert names == set(calls)
    for name, kwargs in calls.items():
        inter = h.interaction(h.member)
        await h.config(name, inter, **kwargs)
        assert inter.answers == [REFUSED], name
        assert inter.all_ephemeral
    # no DM sneaks around the check either
    dm = FakeInteraction(h.moderator._user, None)
    await h.config("scope", dm, scope="off")
    assert dm.answers == [REFUSED]
    assert h.store.get(h.guild.id) == before
    # Owners and administrators pass even without a Manage Server role.
    admin = back.make_role(
        "Admin", h.guild, permissions=discord.Permissions(administrator=True).value
    )
    back.update_member(h.member, roles=[admin])
    inter = h.interaction(h.guild.get_member(h.member.id))
    await h.config("show", inter)
    assert inter.answers[0].startswith("**humanmade settings")


@pytest.mark.asyncio
async def test_moderators_change_settings(make_harness):
    h = await make_harness()
    mod = h.moderator

    async def run(name: str, **kwargs: object) -> str:
        inter = h.interaction(mod)
        await h.config(name, inter, **kwargs)
        assert inter.all_ephemeral
        return inter.answers[0]

    assert "Action: react" in await run("show")
    assert "Set a mod-log channel first" in await run("action", mode="hold")
    assert h.store.get(h.guild.id).action is ActionMode.REACT
    assert f"<#{h.mod_log.id}>" in await run("modlog", channel=h.mod_log)
    answer = await run("action", mode="hold")
    assert "review held messages" in answer and "Action: hold" in answer
    assert "only listed channels" in await run("watch", channel=h.other_channel)
    answer = await run("threshold", band="uncertain", percent=70)
    assert "at or above 70%" in answer
    await run("exempt", role=h.guild.default_role)
    answer = await run("modlog", channel=None)
    assert "switched to **react**" in answer
    config = h.store.get(h.guild.id)
    assert config.action is ActionMode.REACT and config.mod_log_channel_id is None
    assert config.scope is Scope.LISTED and config.watched_channels == {h.other_channel.id}
    assert config.threshold == 0.7 and config.min_band is Band.UNCERTAIN
    assert config.exempt_roles == {h.guild.default_role.id}
    await run("threshold")
    assert h.store.get(h.guild.id).threshold is None
    await run("unwatch", channel=h.other_channel)
    await run("unexempt", role=h.guild.default_role)
    config = h.store.get(h.guild.id)
    assert not config.watched_channels and not config.exempt_roles


@pytest.mark.asyncio
async def test_settings_persist_across_a_restart(make_harness, tmp_path):
    h = await make_harness()
    for name, kwargs in [
        ("modlog", {"channel": h.mod_log}),
        ("action", {"mode": "log"}),
        ("watch", {"channel": h.channel}),
        ("threshold", {"percent": 90}),
    ]:
        await h.config(name, h.interaction(h.moderator), **kwargs)
    before = h.store.get(h.guild.id)
    show = h.interaction(h.moderator)
    await h.config("show", show)
    for cog in list(h.bot.cogs):  # the old process is gone ...
        await h.bot.remove_cog(cog)
    # (messages the new bot will be shown; made while dpytest still has a live client)
    message = back.make_message("", h.member, h.channel, attachments=[h.attachment(AI_PNG, "a")])
    other = back.make_message(
        "", h.member, h.other_channel, attachments=[h.attachment(AI_PNG, "a")]
    )
    await dpytest.run_all_events()
    # What HumanmadeBot.close() adds to discord.py's close (the fake gateway stays up for
    # dpytest, which keeps dispatching through the old client).
    await h.bot.scorer.close()
    h.bot.store.close()

    # A new bot, a new store on the same file, the same (fake) Discord guild.
    settings = settings_for(tmp_path / "bot.sqlite3")
    bot = new_bot(settings, FakeModel().scorer())
    await bot._async_setup_hook()
    await bot.setup_hook()
    try:
        assert bot.store.get(h.guild.id) == before
        cog = bot.get_cog("Settings")
        again = h.interaction(h.moderator)
        await cog.config.get_command("show").callback(cog, again)
        assert again.answers == show.answers
        assert "Action: log" in again.answers[0] and "at or above 90%" in again.answers[0]
        # ... and scanning follows them: a report in the mod-log, nothing in other channels.
        await bot.get_cog("Scan").on_message(message)
        await bot.get_cog("Scan").on_message(other)
        (report,) = drain()
        assert report.channel.id == h.mod_log.id and message.jump_url in report.content
    finally:
        await bot.scorer.close()
        bot.store.close()


@pytest.mark.asyncio
async def test_about_says_what_the_score_means(make_harness):
    h = await make_harness()
    inter = h.interaction()
    await h.settings_cog.about.callback(h.settings_cog, inter)
    (text,) = inter.answers
    assert "`fake-1`" in text and "calibrated probability" in text and "not a verdict" in text
    assert "below 20% likely human" in text and inter.all_ephemeral
