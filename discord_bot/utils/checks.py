"""Who may do what, and how often."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable

import discord

from discord_bot.settings import Rate

__all__ = ["Cooldowns", "can_manage_guild"]


def can_manage_guild(interaction: discord.Interaction) -> bool:
    """Whether the member behind an interaction has Manage Server in its guild.

    Checked in code on every config command, so a server that loosened the commands'
    default permissions in its integration settings still cannot let anyone change them.
    """
    if interaction.guild is None:
        return False
    user = interaction.user
    if not isinstance(user, discord.Member):
        return False
    if user.id == interaction.guild.owner_id:
        return True
    perms = user.guild_permissions
    return perms.manage_guild or perms.administrator


class Cooldowns:
    """A sliding-window limit per key: at most `rate.count` hits per `rate.seconds`."""

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._hits: dict[Hashable, deque[float]] = {}

    def retry_after(self, key: Hashable) -> float:
        """Seconds until `key` may go again (0.0 when it may now), without counting a hit."""
        now = self._clock()
        hits = self._prune(key, now)
        if len(hits) < self.rate.count:
            return 0.0
        return max(0.0, hits[0] + self.rate.seconds - now)

    def hit(self, key: Hashable) -> None:
        now = self._clock()
        self._prune(key, now).append(now)

    def _prune(self, key: Hashable, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.rate.seconds:
            hits.popleft()
        if len(self._hits) > 10_000:  # forget idle keys now and then
            for idle in [k for k, v in self._hits.items() if not v and k != key]:
                del self._hits[idle]
        return hits


def take(limits: list[tuple[Cooldowns, Hashable]]) -> float:
    """Count one use against every (cooldown, key) if all allow it; else the longest wait."""
    wait = max((cd.retry_after(key) for cd, key in limits), default=0.0)
    if wait == 0.0:
        for cd, key in limits:
            cd.hit(key)
    return wait
