"""`/humanmade about` for everyone, and `/humanmade config ...` for members with Manage Server.

The permission is checked in code in every config command: Discord's default permissions
apply only to top-level commands (and server admins can loosen them), so they are not
relied on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from detector_core.verdict import Band
from discord_bot.store import ActionMode, Scope
from discord_bot.utils.checks import can_manage_guild
from discord_bot.utils.formatting import about_text, config_text

if TYPE_CHECKING:
    from discord_bot.bot import HumanmadeBot

log = logging.getLogger(__name__)

REFUSED = "Only members with the Manage Server permission can view or change these settings."


class Settings(commands.GroupCog, group_name="humanmade", group_description="humanmade bot"):
    config = app_commands.Group(
        name="config",
        description="View or change how the bot works in this server (Manage Server only)",
        guild_only=True,
    )

    def __init__(self, bot: HumanmadeBot) -> None:
        self.bot = bot
        super().__init__()

    # ----------------------------------------------------------------------------- about

    @app_commands.command(name="about", description="What the score means, and the model used.")
    async def about(self, interaction: discord.Interaction) -> None:
        version = None
        try:
            version = await self.bot.scorer.model_version()
        except Exception:  # the about text must work even when the model cannot load
            log.exception("could not read the model version")
        await interaction.response.send_message(about_text(version), ephemeral=True)

    # ----------------------------------------------------------------------------- config

    async def _guard(self, interaction: discord.Interaction) -> bool:
        if can_manage_guild(interaction):
            return True
        log.info(
            "refused config command from user %s in guild %s",
            interaction.user.id,
            interaction.guild_id,
        )
        await interaction.response.send_message(REFUSED, ephemeral=True)
        return False

    async def _show(self, interaction: discord.Interaction, note: str = "") -> None:
        assert interaction.guild_id is not None
        text = config_text(self.bot.store.get(interaction.guild_id), interaction.guild)
        await interaction.response.send_message(
            f"{note}\n\n{text}" if note else text, ephemeral=True
        )

    @config.command(name="show", description="Show this server's settings.")
    async def config_show(self, interaction: discord.Interaction) -> None:
        if await self._guard(interaction):
            await self._show(interaction)

    @config.command(name="scope", description="Scan all channels, only listed ones, or none.")
    @app_commands.describe(scope="all, listed (see watch/unwatch) or off")
    async def config_scope(
        self, interaction: discord.Interaction, scope: Literal["all", "listed", "off"]
    ) -> None:
        if not await self._guard(interaction):
            return
        assert interaction.guild_id is not None
        self.bot.store.update(interaction.guild_id, scope=Scope(scope))
        await self._show(interaction, f"Scanning scope is now **{scope}**.")

    @config.command(name="watch", description="Scan this channel (switches to listed channels).")
    @app_commands.describe(channel="A channel to scan")
    async def config_watch(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        if not await self._guard(interaction):
            return
        assert interaction.guild_id is not None
        self.bot.store.set_watched(interaction.guild_id, channel.id, True)
        self.bot.store.update(interaction.guild_id, scope=Scope.LISTED)
        await self._show(interaction, f"Now watching {channel.mention}.")

    @config.command(name="unwatch", description="Stop scanning this listed channel.")
    @app_commands.describe(channel="A listed channel")
    async def config_unwatch(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        if not await self._guard(interaction):
            return
        assert interaction.guild_id is not None
        self.bot.store.set_watched(interaction.guild_id, channel.id, False)
        await self._show(interaction, f"{channel.mention} is no longer on the list.")

    @config.command(name="action", description="What the bot does with a flagged image.")
    @app_commands.describe(
        mode="react: an emoji; reply: the score as a reply; log: report to the mod-log; "
        "hold: delete and report to the mod-log for review"
    )
    async def config_action(
        self, interaction: discord.Interaction, mode: Literal["react", "reply", "log", "hold"]
    ) -> None:
        if not await self._guard(interaction):
            return
        assert interaction.guild_id is not None
        action = ActionMode(mode)
        config = self.bot.store.get(interaction.guild_id)
        if action in (ActionMode.LOG, ActionMode.HOLD) and config.mod_log_channel_id is None:
            await interaction.response.send_message(
                f"Set a mod-log channel first (`/humanmade config modlog`); `{mode}` reports "
                "there.",
                ephemeral=True,
            )
            return
        self.bot.store.update(interaction.guild_id, action=action)
        note = f"Action is now **{mode}**."
        if action is ActionMode.HOLD:
            note += (
                " Flagged messages will be deleted and posted to the mod-log for review. The "
                "score is only an estimate: please review held messages promptly and repost "
                "the ones that were wrongly held. The bot needs Manage Messages there."
            )
        await self._show(interaction, note)

    @config.command(name="threshold", description="When the bot acts: by band, or by a percent.")
    @app_commands.describe(
        band="Act on 'likely AI' only, or on 'uncertain' too",
        percent="Instead, act at or above this AI probability (1-99); leave empty for the band",
    )
    async def config_threshold(
        self,
        interaction: discord.Interaction,
        band: Literal["likely_ai", "uncertain"] = "likely_ai",
        percent: app_commands.Range[int, 1, 99] | None = None,
    ) -> None:
        if not await self._guard(interaction):
            return
        assert interaction.guild_id is not None
        self.bot.store.update(
            interaction.guild_id,
            min_band=Band(band),
            threshold=None if percent is None else percent / 100.0,
        )
        await self._show(interaction, "Threshold updated.")

    @config.command(name="modlog", description="Where reports go; leave empty to unset.")
    @app_commands.describe(channel="The moderators' channel for reports")
    async def config_modlog(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        if not await self._guard(interaction):
            return
        assert interaction.guild_id is not None
        changes: dict[str, object] = {"mod_log_channel_id": channel.id if channel else None}
        note = f"Mod-log channel is now {channel.mention}." if channel else "Mod-log unset."
        config = self.bot.store.get(interaction.guild_id)
        if channel is None and config.action in (ActionMode.LOG, ActionMode.HOLD):
            changes["action"] = ActionMode.REACT
            note += " The action was switched to **react**, which needs no mod-log."
        self.bot.store.update(interaction.guild_id, **changes)
        await self._show(interaction, note)

    @config.command(name="exempt", description="Never scan messages from members with this role.")
    @app_commands.describe(role="Members with this role are not scanned")
    async def config_exempt(self, interaction: discord.Interaction, role: discord.Role) -> None:
        if not await self._guard(interaction):
            return
        assert interaction.guild_id is not None
        self.bot.store.set_exempt(interaction.guild_id, role.id, True)
        await self._show(interaction, f"Members with {role.mention} are exempt.")

    @config.command(name="unexempt", description="Scan members with this role again.")
    @app_commands.describe(role="An exempt role")
    async def config_unexempt(self, interaction: discord.Interaction, role: discord.Role) -> None:
        if not await self._guard(interaction):
            return
        assert interaction.guild_id is not None
        self.bot.store.set_exempt(interaction.guild_id, role.id, False)
        await self._show(interaction, f"Members with {role.mention} are scanned again.")


async def setup(bot: HumanmadeBot) -> None:
    await bot.add_cog(Settings(bot))
