"""What the environment configures, read and validated once at start.

| variable | meaning | default |
| --- | --- | --- |
| `DISCORD_TOKEN` or `DISCORD_TOKEN_FILE` | the bot token, or a file holding it | required |
| `HUMANMADE_BOT_DB` | SQLite file with per-guild settings | `./humanmade-bot.sqlite3` |
| `HUMANMADE_API_URL` | remote mode: the Django app's base URL | unset (score locally) |
| `HUMANMADE_API_TOKEN` / `HUMANMADE_API_TOKEN_FILE` | remote mode: its API token | |
| `HUMANMADE_BOT_WORKERS` | images scored at once (local mode: threads) | 1 |
| `HUMANMADE_BOT_MAX_MB` | largest image fetched or scored | 20 |
| `HUMANMADE_BOT_SYNC_COMMANDS` | publish slash commands on start (`0` to skip) | 1 |

Local mode also honours the engine's own variables (`HUMANMADE_WEIGHTS`, ...).
Secrets are kept out of `repr()` and never appear in a message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["VARIABLES", "BotSettings", "ConfigError", "Rate", "read_secret"]

DEFAULT_DB = "humanmade-bot.sqlite3"

# (name, meaning, default) of every variable read here; `humanmade-bot --help` lists them.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("DISCORD_TOKEN", "the bot token (or DISCORD_TOKEN_FILE: a file holding it)", "required"),
    ("HUMANMADE_BOT_DB", "SQLite file with per-server settings", DEFAULT_DB),
    ("HUMANMADE_API_URL", "remote mode: the Django app's base URL", "unset, score locally"),
    ("HUMANMADE_API_TOKEN", "remote mode: its API token (or HUMANMADE_API_TOKEN_FILE)", "unset"),
    ("HUMANMADE_BOT_WORKERS", "images scored at once", "1"),
    ("HUMANMADE_BOT_MAX_MB", "largest image fetched or scored, in MB", "20"),
    ("HUMANMADE_BOT_SYNC_COMMANDS", "publish slash commands on start (0 to skip)", "1"),
)


class ConfigError(Exception):
    """The environment does not describe a runnable bot; the message says what to fix."""


@dataclass(frozen=True)
class Rate:
    """At most `count` uses per `seconds`."""

    count: int
    seconds: float


@dataclass(frozen=True)
class BotSettings:
    token: str = field(repr=False)
    db_path: Path = Path(DEFAULT_DB)
    api_url: str | None = None
    api_token: str | None = field(default=None, repr=False)
    workers: int = 1
    max_bytes: int = 20 * 1024 * 1024
    sync_commands: bool = True
    max_images_per_message: int = 4
    # Answer a /check at once when scoring finishes within this; otherwise defer first.
    defer_after: float = 1.5
    check_per_user: Rate = Rate(5, 60.0)
    check_per_guild: Rate = Rate(30, 60.0)
    scan_per_user: Rate = Rate(10, 60.0)
    scan_per_guild: Rate = Rate(60, 60.0)

    @property
    def remote(self) -> bool:
        return self.api_url is not None

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.api_token) if s)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BotSettings:
        env = os.environ if environ is None else environ
        token = read_secret(env, "DISCORD_TOKEN", required=True)
        assert token is not None
        api_url = env.get("HUMANMADE_API_URL", "").strip() or None
        api_token = read_secret(env, "HUMANMADE_API_TOKEN", required=api_url is not None)
        if api_url is not None and not api_url.startswith(("http://", "https://")):
            raise ConfigError("HUMANMADE_API_URL must start with http:// or https://.")
        return cls(
            token=token,
            db_path=Path(env.get("HUMANMADE_BOT_DB", "").strip() or DEFAULT_DB),
            api_url=api_url,
            api_token=api_token if api_url else None,
            workers=_positive_int(env, "HUMANMADE_BOT_WORKERS", 1),
            max_bytes=_positive_int(env, "HUMANMADE_BOT_MAX_MB", 20) * 1024 * 1024,
            sync_commands=env.get("HUMANMADE_BOT_SYNC_COMMANDS", "1").strip().lower()
            not in ("0", "false", "no", "off"),
        )


def read_secret(env: Mapping[str, str], name: str, *, required: bool) -> str | None:
    """`$NAME`, or the contents of the file `$NAME_FILE`; never echoes the value."""
    value = env.get(name, "").strip()
    file_name = env.get(f"{name}_FILE", "").strip()
    if value and file_name:
        raise ConfigError(f"Both {name} and {name}_FILE are set; set only one of them.")
    if file_name:
        try:
            value = Path(file_name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(f"{name}_FILE: cannot read {file_name} ({reason}).") from None
        if not value:
            raise ConfigError(f"{name}_FILE: {file_name} is empty.")
    if not value:
        if required:
            raise ConfigError(
                f"No {name} is set. Put the token in the {name} environment variable, or in a "
                f"file named by {name}_FILE."
            )
        return None
    if any(c.isspace() for c in value) or not value.isprintable():
        raise ConfigError(f"{name} does not look like a token (it contains spaces or controls).")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {text!r}.") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}.")
    return value
