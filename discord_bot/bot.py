"""The `Bot` subclass: holds the scorer, the settings store and the cooldowns; loads the cogs."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from discord_bot.scoring import Scorer
from discord_bot.settings import BotSettings
from discord_bot.store import ConfigStore
from discord_bot.utils.checks import Cooldowns

log = logging.getLogger(__name__)

EXTENSIONS = ("discord_bot.cogs.scan", "discord_bot.cogs.check", "discord_bot.cogs.config")


def default_intents() -> discord.Intents:
    # Attachments, embeds and text of guild messages need the privileged message-content
    # intent (enable it for the application in the Discord developer portal).
    wanted = discord.Intents.default()
    wanted.message_content = True
    # Not needed: message and interaction payloads carry the author's roles and permissions.
    wanted.members = False
    wanted.presences = False
    return wanted


def invite_permissions(*, hold: bool = False) -> discord.Permissions:
    """What the bot needs in a server: see channels and their history (to reply), send,
    react and attach (reports carry the images); deleting only for the `hold` action."""
    return discord.Permissions(
        view_channel=True,
        read_message_history=True,
        send_messages=True,
        send_messages_in_threads=True,
        add_reactions=True,
        attach_files=True,
        manage_messages=hold,
    )


def invite_url(application_id: int, *, hold: bool = False) -> str:
    return discord.utils.oauth_url(
        application_id,
        permissions=invite_permissions(hold=hold),
        scopes=("bot", "applications.commands"),
    )


class HumanmadeBot(commands.Bot):
    def __init__(
        self,
        *,
        settings: BotSettings,
        scorer: Scorer,
        store: ConfigStore,
        intents: discord.Intents | None = None,
    ) -> None:
        # The bot never joins voice: discord.py's warnings about missing voice libraries
        # (PyNaCl, davey) would only alarm whoever reads the log.
        for flag in ("warn_nacl", "warn_dave"):
            if hasattr(discord.VoiceClient, flag):
                setattr(discord.VoiceClient, flag, False)
        super().__init__(
            command_prefix=commands.when_mentioned,  # no text commands; slash commands only
            intents=intents or default_intents(),
            help_command=None,
            # The bot never pings anyone: reports mention authors without notifying them.
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self.scorer = scorer
        self.store = store
        self.check_user_cooldown = Cooldowns(settings.check_per_user)
        self.check_guild_cooldown = Cooldowns(settings.check_per_guild)
        self.scan_user_cooldown = Cooldowns(settings.scan_per_user)
        self.scan_guild_cooldown = Cooldowns(settings.scan_per_guild)
        self.tree.on_error = self.on_app_command_error

    async def setup_hook(self) -> None:
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.settings.sync_commands:
            synced = await self.tree.sync()
            log.info("published %d application commands", len(synced))

    async def on_ready(self) -> None:
        log.info(
            "connected as %s (id %s) to %d servers",
            self.user,
            self.user and self.user.id,
            len(self.guilds),
        )
        if self.application_id:
            log.info("invite it to a server: %s", invite_url(self.application_id))

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        command = interaction.command.qualified_name if interaction.command else "?"
        if isinstance(error, app_commands.CheckFailure):
            text = "You cannot use this command here."
        else:
            log.exception("app command %s failed", command, exc_info=error)
            text = "Something went wrong on the bot's side; it has been logged."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            pass

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self.scorer.close()
            self.store.close()
