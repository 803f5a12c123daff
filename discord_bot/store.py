"""Per-guild settings, persisted in SQLite (stdlib `sqlite3`, one file, schema made on start).

Reads come from a write-through in-memory cache, so the message handler never touches the
disk; writes are single small transactions (a config command, a few per day at most).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from detector_core.headline import cutoff_percent
from detector_core.verdict import Band, BandCutoffs

__all__ = ["ActionMode", "ConfigStore", "GuildConfig", "Scope"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS guild_config (
    guild_id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL DEFAULT 'all',
    action TEXT NOT NULL DEFAULT 'react',
    min_band TEXT NOT NULL DEFAULT 'likely_ai',
    threshold REAL,
    mod_log_channel_id INTEGER
);
CREATE TABLE IF NOT EXISTS watched_channel (
    guild_id INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);
CREATE TABLE IF NOT EXISTS exempt_role (
    guild_id INTEGER NOT NULL,
    role_id INTEGER NOT NULL,
    PRIMARY KEY (guild_id, role_id)
);
"""


class Scope(StrEnum):
    ALL = "all"  # every channel the bot can read
    LISTED = "listed"  # only the watched channels
    OFF = "off"  # no automatic scanning (/check still works)


class ActionMode(StrEnum):
    REACT = "react"  # an emoji on the message
    REPLY = "reply"  # a reply with the summary line
    LOG = "log"  # a report in the mod-log channel with a jump link
    HOLD = "hold"  # delete, and post it to the mod-log for review (never the default)


_BAND_RANK = {Band.LIKELY_HUMAN: 0, Band.UNCERTAIN: 1, Band.LIKELY_AI: 2}


@dataclass(frozen=True)
class GuildConfig:
    guild_id: int
    scope: Scope = Scope.ALL
    action: ActionMode = ActionMode.REACT
    # Act on images in this band or above (likely_ai, or uncertain and likely_ai) ...
    min_band: Band = Band.LIKELY_AI
    # ... or, when set, on an AI probability at or above this (0-1), whatever the band.
    threshold: float | None = None
    mod_log_channel_id: int | None = None
    watched_channels: frozenset[int] = field(default_factory=frozenset)
    exempt_roles: frozenset[int] = field(default_factory=frozenset)

    def watches(self, channel_id: int, parent_id: int | None = None) -> bool:
        """Whether a message in this channel (or in a thread of `parent_id`) is scanned."""
        if self.scope is Scope.OFF:
            return False
        if self.scope is Scope.ALL:
            return True
        return channel_id in self.watched_channels or (
            parent_id is not None and parent_id in self.watched_channels
        )

    def is_exempt(self, role_ids: set[int] | frozenset[int]) -> bool:
        return bool(self.exempt_roles & set(role_ids))

    def should_act(self, probability: float, band: Band) -> bool:
        if self.threshold is not None:
            return probability >= self.threshold
        return _BAND_RANK[band] >= _BAND_RANK[self.min_band]

    def rule_text(self, cutoffs: BandCutoffs | None = None) -> str:
        if self.threshold is not None:
            return f"AI probability at or above {round(self.threshold * 100)}%"
        cutoffs = cutoffs or BandCutoffs()
        if self.min_band is Band.LIKELY_AI:
            return f"band 'likely AI' ({cutoff_percent(cutoffs.ai, cutoffs)}% and above)"
        return (
            f"band 'uncertain' or 'likely AI' ({cutoff_percent(cutoffs.human, cutoffs)}% and above)"
        )


class ConfigStore:
    """Guild settings in one SQLite file. Thread-safe; the cache makes reads free."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._cache: dict[int, GuildConfig] = {}
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} was written by a newer humanmade-bot (schema {version})"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, guild_id: int) -> GuildConfig:
        cached = self._cache.get(guild_id)
        if cached is not None:
            return cached
        with self._lock:
            config = self._load(guild_id)
            self._cache[guild_id] = config
        return config

    def _load(self, guild_id: int) -> GuildConfig:
        row = self._db.execute(
            "SELECT scope, action, min_band, threshold, mod_log_channel_id "
            "FROM guild_config WHERE guild_id = ?",
            (guild_id,),
        ).fetchone()
        watched = frozenset(
            r[0]
            for r in self._db.execute(
                "SELECT channel_id FROM watched_channel WHERE guild_id = ?", (guild_id,)
            )
        )
        exempt = frozenset(
            r[0]
            for r in self._db.execute(
                "SELECT role_id FROM exempt_role WHERE guild_id = ?", (guild_id,)
            )
        )
        config = GuildConfig(guild_id, watched_channels=watched, exempt_roles=exempt)
        if row is not None:
            scope, action, min_band, threshold, mod_log = row
            config = replace(
                config,
                scope=Scope(scope),
                action=ActionMode(action),
                min_band=Band(min_band),
                threshold=threshold,
                mod_log_channel_id=mod_log,
            )
        return config

    def update(self, guild_id: int, **changes: object) -> GuildConfig:
        """Change scope, action, min_band, threshold or mod_log_channel_id; returns the result."""
        current = self.get(guild_id)
        new = replace(current, **changes)  # type: ignore[arg-type]
        with self._lock:
            self._db.execute(
                "INSERT INTO guild_config "
                "(guild_id, scope, action, min_band, threshold, mod_log_channel_id) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(guild_id) DO UPDATE SET "
                "scope=excluded.scope, action=excluded.action, min_band=excluded.min_band, "
                "threshold=excluded.threshold, mod_log_channel_id=excluded.mod_log_channel_id",
                (
                    guild_id,
                    new.scope.value,
                    new.action.value,
                    new.min_band.value,
                    new.threshold,
                    new.mod_log_channel_id,
                ),
            )
            self._cache[guild_id] = new
        return new

    def set_watched(self, guild_id: int, channel_id: int, watched: bool) -> GuildConfig:
        return self._set_member("watched_channel", "channel_id", guild_id, channel_id, watched)

    def set_exempt(self, guild_id: int, role_id: int, exempt: bool) -> GuildConfig:
        return self._set_member("exempt_role", "role_id", guild_id, role_id, exempt)

    def _set_member(
        self, table: str, column: str, guild_id: int, value: int, present: bool
    ) -> GuildConfig:
        with self._lock:
            if present:
                self._db.execute(
                    f"INSERT OR IGNORE INTO {table} (guild_id, {column}) VALUES (?, ?)",
                    (guild_id, value),
                )
            else:
                self._db.execute(
                    f"DELETE FROM {table} WHERE guild_id = ? AND {column} = ?", (guild_id, value)
                )
            config = self._load(guild_id)
            self._cache[guild_id] = config
        return config
