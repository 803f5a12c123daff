"""On-demand checks: `/check` (an attachment or a URL) and the "Check image" message menu.

Answers are ephemeral. When scoring finishes within `settings.defer_after` seconds the answer
comes at once; otherwise the interaction is deferred first (Discord allows 3 s) and the
answer follows.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from detector_core.errors import HumanmadeError
from discord_bot.scoring import ScoreResult
from discord_bot.utils.checks import take
from discord_bot.utils.formatting import check_answer
from discord_bot.utils.images import ImageRef, find_images, score_ref

if TYPE_CHECKING:
    from discord_bot.bot import HumanmadeBot

log = logging.getLogger(__name__)

Outcome = tuple[str, ScoreResult | HumanmadeError]


class Check(commands.Cog):
    def __init__(self, bot: HumanmadeBot) -> None:
        self.bot = bot
        # Context menus cannot be declared inside a cog with a decorator; add it by hand.
        self.menu = app_commands.ContextMenu(name="Check image", callback=self.check_message)
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @app_commands.command(name="check", description="Estimate whether an image is AI-generated.")
    @app_commands.describe(image="An image to check", url="Or a link to an image")
    async def check(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment | None = None,
        url: str | None = None,
    ) -> None:
        url = (url or "").strip() or None
        if (image is None) == (url is None):
            await interaction.response.send_message(
                "Give me one image: attach a file, or paste a link.", ephemeral=True
            )
            return
        if not await self._within_cooldown(interaction):
            return
        if image is not None:
            refs = [ImageRef(label=image.filename, attachment=image)]
        else:
            assert url is not None
            refs = [ImageRef(label=url, url=url)]
        await self._answer(interaction, refs)

    async def check_message(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        refs = find_images(message, self.bot.settings.max_images_per_message)
        if not refs:
            await interaction.response.send_message(
                "That message has no image I can check (attachments, embeds or image links).",
                ephemeral=True,
            )
            return
        if not await self._within_cooldown(interaction):
            return
        await self._answer(interaction, refs)

    async def _within_cooldown(self, interaction: discord.Interaction) -> bool:
        limits: list = [(self.bot.check_user_cooldown, interaction.user.id)]
        if interaction.guild_id is not None:
            limits.append((self.bot.check_guild_cooldown, interaction.guild_id))
        wait = take(limits)
        if wait:
            await interaction.response.send_message(
                f"Too many checks in a short time; try again in {math.ceil(wait)} s.",
                ephemeral=True,
            )
            return False
        return True

    async def _answer(self, interaction: discord.Interaction, refs: list[ImageRef]) -> None:
        task = asyncio.create_task(self._score_all(refs))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.bot.settings.defer_after)
            deferred = not done
            if deferred:
                await interaction.response.defer(ephemeral=True, thinking=True)
            text = check_answer(await task)
        finally:
            task.cancel()  # a no-op once it finished; stops the work if we gave up
        if deferred:
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)

    async def _score_all(self, refs: list[ImageRef]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for ref in refs:
            try:
                result, _ = await score_ref(self.bot.scorer, ref, self.bot.settings.max_bytes)
            except HumanmadeError as exc:
                outcomes.append((ref.label, exc))
            else:
                outcomes.append((ref.label, result))
        return outcomes


async def setup(bot: HumanmadeBot) -> None:
    await bot.add_cog(Check(bot))
