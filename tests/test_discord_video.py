"""The Discord bot with videos and GIFs, under dpytest, on the real engine (tiny weights):
a video attachment gets a reply that says how much of the clip was looked at."""

from __future__ import annotations

import discord
import discord.ext.test as dpytest
import discord.ext.test.backend as back
import pytest
import test_discord_bot
from video_support import make_animation, make_audio_only, make_clip

from detector_core import Detector
from detector_core.verdict import BandCutoffs
from discord_bot.scoring import LocalScorer
from discord_bot.store import ActionMode
from discord_bot.utils.formatting import ADVISORY
from discord_bot.utils.images import find_images

pytest.importorskip("av")

# The bot harness (a dpytest bot with a temporary store) of the bot's own tests.
make_harness = test_discord_bot.make_harness
drain = test_discord_bot.drain

ALL_AI = BandCutoffs(human=0.0, ai=1e-9)  # every score is likely AI: the bot always replies


def _detector(weights) -> Detector:
    return Detector(weights, cutoffs=ALL_AI, stability_check=False, provenance=False)


@pytest.mark.asyncio
async def test_a_video_attachment_gets_a_reply_with_its_coverage(
    make_harness, tiny_weights, tmp_path
):
    h = await make_harness(scorer=LocalScorer(_detector(tiny_weights)))
    h.configure(action=ActionMode.REPLY)
    clip = make_clip(tmp_path / "clip.mp4", seconds=2).read_bytes()
    attachment = h.attachment(clip, "clip.mp4", content_type="video/mp4")
    back.make_message("watch", h.member, h.channel, attachments=[attachment])
    await dpytest.run_all_events()
    (reply,) = drain()
    assert "(likely AI) — video, " in reply.content
    assert "(all of the clip)" in reply.content
    assert ADVISORY in reply.content


@pytest.mark.asyncio
async def test_a_gif_attachment_is_judged_on_its_frames(make_harness, tiny_weights):
    h = await make_harness(scorer=LocalScorer(_detector(tiny_weights)))
    h.configure(action=ActionMode.REPLY)
    await h.post("loop", files=[(make_animation("GIF", n=8), "loop.gif")])
    (reply,) = drain()
    assert "— animation, " in reply.content


@pytest.mark.asyncio
async def test_an_audio_file_named_mp4_is_skipped_quietly(make_harness, tiny_weights, tmp_path):
    h = await make_harness(scorer=LocalScorer(_detector(tiny_weights)))
    h.configure(action=ActionMode.REPLY)
    audio = make_audio_only(tmp_path / "song.mp4").read_bytes()
    attachment = h.attachment(audio, "song.mp4", content_type="video/mp4")
    message = back.make_message("", h.member, h.channel, attachments=[attachment])
    await dpytest.run_all_events()
    assert drain() == []
    assert [str(r.emoji) for r in message.reactions if r.me] == []


@pytest.mark.asyncio
async def test_check_command_answers_for_a_video(make_harness, tiny_weights, tmp_path):
    h = await make_harness(scorer=LocalScorer(_detector(tiny_weights)))
    inter = h.interaction()
    clip = make_clip(tmp_path / "c.webm", seconds=1, codec="libvpx-vp9", container="webm")
    await h.check(inter, image=h.attachment(clip.read_bytes(), "c.webm", "video/webm"))
    assert "— video, " in inter.answers[0] and ADVISORY in inter.answers[0]


def test_gif_link_embeds_are_taken_as_their_video():
    embed = discord.Embed.from_dict(
        {
            "video": {"url": "https://media.example.org/a.mp4", "proxy_url": "https://p/a.mp4"},
            "thumbnail": {"url": "https://media.example.org/a.png"},
        }
    )

    class Message:
        attachments: list = []
        embeds = [embed]
        content = ""

    refs = find_images(Message(), 5)  # type: ignore[arg-type]
    assert [r.url for r in refs] == ["https://p/a.mp4"]
