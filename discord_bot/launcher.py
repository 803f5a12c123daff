"""Start the bot: `humanmade-bot` or `python -m discord_bot`.

Reads the settings from the environment (see `discord_bot.settings`), sets up logging with
the secrets redacted, builds the scorer (local model or remote scoring server) and runs.
Exit codes: 0 after a clean stop, 1 when Discord refuses the token, cannot be reached, or
start-up fails, 2 when the configuration is missing or invalid or the `discord` extra is
not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Mapping, Sequence

from discord_bot.settings import VARIABLES, BotSettings, ConfigError

log = logging.getLogger("discord_bot")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class RedactSecrets(logging.Filter):
    """Replaces every secret in a log record's final text (message, arguments, traceback)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        exc_text = record.exc_text or ""
        if any(s in text or s in exc_text for s in self.secrets):
            for secret in self.secrets:
                text = text.replace(secret, "[redacted]")
                exc_text = exc_text.replace(secret, "[redacted]")
            record.msg, record.args = text, None
            record.exc_text = exc_text or None
        return True


def setup_logging(level: str = "INFO", secrets: Sequence[str] = ()) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.setLevel(level)
    root.addHandler(handler)
    logging.getLogger("discord.http").setLevel(logging.WARNING)
    return handler


# What the bot needs beyond the core install, and the extra that brings it.
REQUIRED_MODULES = ("discord", "aiohttp")
INSTALL_HINT = "pip install 'humanmade[discord]'"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    width = max(len(name) for name, _, _ in VARIABLES)
    settings_help = "\n".join(
        f"  {name:<{width}}  {meaning} (default: {default})" for name, meaning, default in VARIABLES
    )
    parser = argparse.ArgumentParser(
        prog="humanmade-bot",
        description="A Discord bot that scores images for signs of AI generation (advisory).\n"
        "Configured by environment variables; DISCORD_TOKEN (or DISCORD_TOKEN_FILE) is required.\n"
        "Setup, intents and the invite link: discord_bot/README.md.",
        epilog=f"environment variables:\n{settings_help}\n\nLocal scoring also honours the "
        "engine's own variables (HUMANMADE_WEIGHTS, ...).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    runner: Callable[[BotSettings], int] | None = None,
) -> int:
    args = parse_args(argv)
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if missing and runner is None:
        print(
            f"humanmade-bot: the bot needs the 'discord' extra ({', '.join(missing)} not "
            f"installed): {INSTALL_HINT}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        settings = BotSettings.from_env(environ)
    except ConfigError as exc:
        print(f"humanmade-bot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    root = logging.getLogger()
    level = root.level
    handler = setup_logging(args.log_level, settings.secrets)
    try:
        return (runner or run)(settings)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def run(settings: BotSettings) -> int:
    """Build everything and run until stopped."""
    import aiohttp
    import discord

    from discord_bot.bot import HumanmadeBot
    from discord_bot.store import ConfigStore

    try:
        scorer = build_scorer(settings)
        store = ConfigStore(settings.db_path)
    except Exception as exc:
        log.error("could not start: %s", exc)
        return EXIT_FAILED
    log.info(
        "scoring %s; settings in %s",
        f"remotely via {settings.api_url}" if settings.remote else "locally",
        settings.db_path,
    )
    bot = HumanmadeBot(settings=settings, scorer=scorer, store=store)

    async def runner() -> None:
        async with bot:
            await bot.start(settings.token)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(runner())
    except discord.LoginFailure:
        log.error("Discord refused the token (it is not shown here); check DISCORD_TOKEN.")
        return EXIT_FAILED
    except discord.PrivilegedIntentsRequired:
        log.error(
            "Enable the Message Content intent for this application in the Discord developer "
            "portal (Bot > Privileged Gateway Intents); the bot cannot see images without it."
        )
        return EXIT_FAILED
    except (
        aiohttp.ClientError,
        OSError,
        TimeoutError,
        discord.GatewayNotFound,
        discord.ConnectionClosed,
    ) as exc:
        log.error("could not reach Discord: %s", _one_line(exc))
        return EXIT_FAILED
    except discord.HTTPException as exc:
        log.error("Discord answered with an error: %s", _one_line(exc))
        return EXIT_FAILED
    return EXIT_OK


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def build_scorer(settings: BotSettings):
    if settings.remote:
        from discord_bot.scoring import RemoteScorer

        assert settings.api_url is not None and settings.api_token is not None
        return RemoteScorer(settings.api_url, settings.api_token, max_bytes=settings.max_bytes)

    from detector_core import Detector
    from detector_core.fetch import FetchPolicy
    from detector_core.intake import IntakeLimits
    from discord_bot.scoring import LocalScorer

    detector = Detector(
        limits=IntakeLimits(max_bytes=settings.max_bytes),
        fetch_policy=FetchPolicy(max_bytes=settings.max_bytes),
    )
    detector.load()  # fail at start, with the engine's message, if the weights are missing
    log.info("model %s loaded", detector.model_version)
    return LocalScorer(detector, workers=settings.workers)
