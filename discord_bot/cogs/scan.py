"""Scanning: score the images in new messages of watched channels and take the guild's action.

discord.py runs each listener call in its own task and the scorer works off the event loop,
so a slow image delays nothing but its own message's action.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from detector_core.errors import HumanmadeError
from discord_bot.scoring import ScoreResult
from discord_bot.store import ActionMode, GuildConfig
from discord_bot.utils.checks import take
from discord_bot.utils.formatting import REACTION, mod_log_text, reply_text
from discord_bot.utils.images import ImageRef, find_images, score_ref

if TYPE_CHECKING:
    from discord_bot.bot import HumanmadeBot

log = logging.getLogger(__name__)

_SCANNED_TYPES = (discord.MessageType.default, discord.MessageType.reply)


class Scan(commands.Cog):
    def __init__(self, bot: HumanmadeBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        guild = message.guild
        if guild is None or message.author.bot or message.type not in _SCANNED_TYPES:
            return  # DMs, bots (and so webhooks and the bot itself), system messages
        config = self.bot.store.get(guild.id)
        if not config.watches(message.channel.id, getattr(message.channel, "parent_id", None)):
            return
        if config.is_exempt({role.id for role in getattr(message.author, "roles", ())}):
            return
        refs = find_images(message, self.bot.settings.max_images_per_message)
        if not refs:
            return
        wait = take(
            [
                (self.bot.scan_guild_cooldown, guild.id),
                (self.bot.scan_user_cooldown, (guild.id, message.author.id)),
            ]
        )
        if wait:
            log.info("guild %s: scan cooldown, message %s not scored", guild.id, message.id)
            return

        flagged: list[tuple[str, ScoreResult]] = []
        files: list[discord.File] = []
        for ref in refs:
            try:
                result, data = await score_ref(self.bot.scorer, ref, self.bot.settings.max_bytes)
            except HumanmadeError as exc:
                # Passive scanning stays quiet about files it cannot read; /check explains.
                log.info(
                    "guild %s: message %s: %s not scored: %s", guild.id, message.id, _kind(ref), exc
                )
                continue
            log.debug("guild %s: message %s: %s", guild.id, message.id, result.summary())
            if result.confirmed_human:
                # A reviewer confirmed this picture human-made: the score must not overrule it.
                continue
            if config.should_act(result.ai_probability, result.band):
                flagged.append((ref.label, result))
                if data:
                    files.append(discord.File(io.BytesIO(data), filename=ref.label))
        if flagged:
            await self.act(message, config, flagged, files, labelled=len(refs) > 1)

    async def act(
        self,
        message: discord.Message,
        config: GuildConfig,
        flagged: list[tuple[str, ScoreResult]],
        files: list[discord.File],
        *,
        labelled: bool = False,
    ) -> None:
        mode = config.action
        mod_log = self._mod_log(message.guild, config)
        if mode in (ActionMode.LOG, ActionMode.HOLD) and mod_log is None:
            log.warning(
                "guild %s: action %s needs a mod-log channel; reacting instead",
                config.guild_id,
                mode.value,
            )
            mode = ActionMode.REACT
        try:
            if mode is ActionMode.REACT:
                await message.add_reaction(REACTION)
            elif mode is ActionMode.REPLY:
                await message.reply(reply_text(flagged, labelled=labelled), mention_author=False)
            elif mode is ActionMode.LOG:
                assert mod_log is not None
                await mod_log.send(mod_log_text(message, flagged, held=False))
            else:
                assert mod_log is not None
                # Report first, with the images: if the report fails, nothing is deleted.
                await mod_log.send(mod_log_text(message, flagged, held=True), files=files)
                await message.delete()
        except discord.HTTPException as exc:
            log.warning(
                "guild %s: could not %s message %s: %s",
                config.guild_id,
                mode.value,
                message.id,
                exc,
            )

    @staticmethod
    def _mod_log(
        guild: discord.Guild | None, config: GuildConfig
    ) -> discord.abc.Messageable | None:
        if guild is None or config.mod_log_channel_id is None:
            return None
        channel = guild.get_channel(config.mod_log_channel_id)
        return channel if isinstance(channel, discord.abc.Messageable) else None


def _kind(ref: ImageRef) -> str:
    return "attachment" if ref.attachment is not None else "linked image"


async def setup(bot: HumanmadeBot) -> None:
    await bot.add_cog(Scan(bot))
