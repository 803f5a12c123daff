"""Everything the bot says, in one place, so the advisory wording stays consistent."""

from __future__ import annotations

from collections.abc import Sequence

import discord

from detector_core.errors import (
    DecompressionBombError,
    EmptyImageError,
    FetchError,
    FileTooLargeError,
    HumanmadeError,
    ImageTooSmallError,
    NotAnImageError,
)
from detector_core.headline import cutoff_percent
from detector_core.verdict import BandCutoffs
from discord_bot.scoring import ScoreResult, ScoringUnavailableError
from discord_bot.store import GuildConfig

ADVISORY = "An automated estimate, not a verdict: it can be wrong, and people decide."
REACTION = "\N{ROBOT FACE}"
MAX_REASONS = 3


def result_line(result: ScoreResult, label: str | None = None) -> str:
    line = f"**{result.summary()}**"
    return f"{line} — {discord.utils.escape_markdown(label)}" if label else line


def check_answer(results: Sequence[tuple[str, ScoreResult | HumanmadeError]]) -> str:
    """The ephemeral answer to /check and "Check image": one block per image."""
    blocks = []
    several = len(results) > 1
    for label, outcome in results:
        if isinstance(outcome, HumanmadeError):
            prefix = f"{discord.utils.escape_markdown(label)}: " if several else ""
            blocks.append(prefix + error_text(outcome))
            continue
        lines = [result_line(outcome, label if several else None)]
        lines += [f"- {reason}" for reason in outcome.reasons[:MAX_REASONS]]
        lines += [f"- {item}" for item in outcome.evidence[:MAX_REASONS]]
        blocks.append("\n".join(lines))
    blocks.append(f"-# {ADVISORY}")
    return _clip("\n\n".join(blocks))


def reply_text(results: Sequence[tuple[str, ScoreResult]], *, labelled: bool = False) -> str:
    """The public reply in `reply` mode: short, and plainly advisory.

    `labelled`: name each image (when the message holds several, not all of them flagged).
    """
    labelled = labelled or len(results) > 1
    lines = [result_line(r, label if labelled else None) for label, r in results]
    lines.append(f"-# {ADVISORY} Moderators have been given the same information.")
    return _clip("\n".join(lines))


def mod_log_text(
    message: discord.Message,
    results: Sequence[tuple[str, ScoreResult]],
    *,
    held: bool,
) -> str:
    author = message.author
    where = getattr(message.channel, "mention", "a channel")
    head = (
        f"Held for review: a message by {author.mention} ({author}) in {where} was removed; "
        "its images are attached. Repost or dismiss it after a look."
        if held
        else f"Possible AI-generated image from {author.mention} ({author}) in {where}: "
        f"{message.jump_url}"
    )
    lines = [head]
    for label, result in results:
        lines.append(f"- {result_line(result, label)}")
        lines += [f"  - {reason}" for reason in result.reasons[:MAX_REASONS]]
        lines += [f"  - {item}" for item in result.evidence[:MAX_REASONS]]
    if held and message.content:
        lines.append("Original text:")
        lines.append(">>> " + discord.utils.escape_mentions(message.content[:1200]))
    lines.append(f"-# {ADVISORY}")
    return _clip("\n".join(lines))


def error_text(exc: HumanmadeError) -> str:
    """A sentence for the person who asked; the engine's message says the specifics."""
    detail = str(exc)
    if isinstance(exc, FileTooLargeError):
        return f"That image is too large to check. {detail}"
    if isinstance(exc, NotAnImageError | EmptyImageError):
        return f"That is not an image I can read. {detail}"
    if isinstance(exc, FetchError):
        return f"I could not fetch that image. {detail}"
    if isinstance(exc, ImageTooSmallError | DecompressionBombError):
        return f"I cannot check that image. {detail}"
    if isinstance(exc, ScoringUnavailableError):
        return f"Scoring is unavailable right now. {detail}"
    return f"I could not check that image. {detail}"


def config_text(config: GuildConfig, guild: discord.Guild | None) -> str:
    def channel(cid: int) -> str:
        return f"<#{cid}>"

    if config.scope.value == "all":
        scope = "all channels the bot can read"
    elif config.scope.value == "listed":
        listed = ", ".join(channel(c) for c in sorted(config.watched_channels)) or "none yet"
        scope = f"only listed channels: {listed}"
    else:
        scope = "off (only /check runs)"
    mod_log = channel(config.mod_log_channel_id) if config.mod_log_channel_id else "not set"
    roles = ", ".join(f"<@&{r}>" for r in sorted(config.exempt_roles)) or "none"
    action = config.action.value
    if config.action.value in ("log", "hold") and not config.mod_log_channel_id:
        action += " (no mod-log channel set: the bot reacts instead)"
    return "\n".join(
        [
            f"**humanmade settings{f' for {guild.name}' if guild else ''}**",
            f"- Watching: {scope}",
            f"- Acts on: {config.rule_text()}",
            f"- Action: {action}",
            f"- Mod-log channel: {mod_log}",
            f"- Exempt roles: {roles}",
        ]
    )


def about_text(model_version: str | None, cutoffs: BandCutoffs | None = None) -> str:
    cutoffs = cutoffs or BandCutoffs()
    human, ai = cutoff_percent(cutoffs.human, cutoffs), cutoff_percent(cutoffs.ai, cutoffs)
    return "\n".join(
        [
            "**humanmade** estimates how likely an image is to be AI-generated.",
            f"- Model: `{model_version or 'unknown (no image scored yet)'}`",
            '- The score is a calibrated probability: "AI-generated: 87% (likely AI)" means '
            "that in testing, about 87 in 100 images scored like this were AI-generated — not "
            "that this one certainly is.",
            f"- Bands: below {human}% likely human, {human}–{ai}% uncertain, {ai}% and above "
            "likely AI. Metadata such as C2PA or generator settings can raise a score's band, "
            "never lower it.",
            "- Heavy editing, screenshots, strong compression and unusual art styles can "
            "mislead it, in both directions.",
            f"- {ADVISORY} Do not punish anyone on the score alone; wrongly calling an artist's "
            "work AI-made is the worst mistake this tool can make.",
        ]
    )


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
