"""The bot's launcher and settings: the token is required, read from env or file, never shown."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import discord
import pytest

from discord_bot import launcher
from discord_bot.launcher import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, RedactSecrets, main
from discord_bot.settings import DEFAULT_DB, BotSettings, ConfigError

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.secret-part-that-must-never-show"
API_TOKEN = "api-token-0123456789abcdef"


def test_missing_token_exits_2_with_a_clear_message(capsys):
    ran = []
    code = main([], environ={}, runner=ran.append)
    out, err = capsys.readouterr()
    assert code == EXIT_CONFIG == 2 and ran == []
    assert "No DISCORD_TOKEN is set" in err and "DISCORD_TOKEN_FILE" in err
    assert out == ""


def test_python_dash_m_without_a_token(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "discord_bot"],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "No DISCORD_TOKEN is set" in proc.stderr


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DISCORD_TOKEN": TOKEN, "DISCORD_TOKEN_FILE": "/x"}, "set only one"),
        ({"DISCORD_TOKEN_FILE": "/nonexistent/token"}, "cannot read /nonexistent/token"),
        ({"DISCORD_TOKEN": "two words"}, "does not look like a token"),
        (
            {"DISCORD_TOKEN": TOKEN, "HUMANMADE_API_URL": "https://scoring.example"},
            "No HUMANMADE_API_TOKEN",
        ),
        (
            {"DISCORD_TOKEN": TOKEN, "HUMANMADE_API_URL": "ftp://x", "HUMANMADE_API_TOKEN": "t"},
            "http://",
        ),
        ({"DISCORD_TOKEN": TOKEN, "HUMANMADE_BOT_WORKERS": "many"}, "whole number"),
        ({"DISCORD_TOKEN": TOKEN, "HUMANMADE_BOT_WORKERS": "0"}, "at least 1"),
    ],
)
def test_bad_configuration_exits_2(environ, message, capsys):
    assert main([], environ=environ, runner=lambda s: 0) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert message in err
    assert TOKEN not in err and "two words" not in err


def test_token_from_a_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    settings = BotSettings.from_env({"DISCORD_TOKEN_FILE": str(path)})
    assert settings.token == TOKEN
    path.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        BotSettings.from_env({"DISCORD_TOKEN_FILE": str(path)})


def test_settings_defaults_and_environment(tmp_path):
    settings = BotSettings.from_env({"DISCORD_TOKEN": TOKEN})
    assert settings.db_path == Path(DEFAULT_DB) and not settings.remote
    assert settings.workers == 1 and settings.max_bytes == 20 * 1024 * 1024
    assert settings.sync_commands
    settings = BotSettings.from_env(
        {
            "DISCORD_TOKEN": TOKEN,
            "HUMANMADE_BOT_DB": str(tmp_path / "x.sqlite3"),
            "HUMANMADE_API_URL": "https://scoring.example/",
            "HUMANMADE_API_TOKEN": API_TOKEN,
            "HUMANMADE_BOT_WORKERS": "2",
            "HUMANMADE_BOT_MAX_MB": "8",
            "HUMANMADE_BOT_SYNC_COMMANDS": "0",
        }
    )
    assert settings.db_path == tmp_path / "x.sqlite3" and settings.remote
    assert settings.api_token == API_TOKEN and settings.workers == 2
    assert settings.max_bytes == 8 * 1024 * 1024 and not settings.sync_commands
    assert TOKEN not in repr(settings) and API_TOKEN not in repr(settings)


def test_the_token_is_never_printed_or_logged(capsys, monkeypatch, tmp_path):
    """The real run(): Discord refuses the token; it must not appear in any output."""

    class FakeScorer:
        max_bytes = 1

        async def close(self) -> None:
            pass

    async def refuse(self, token: str, *, reconnect: bool = True) -> None:
        assert token == TOKEN
        raise discord.LoginFailure(f"Improper token has been passed: {token}")

    monkeypatch.setattr(launcher, "build_scorer", lambda settings: FakeScorer())
    monkeypatch.setattr("discord_bot.bot.HumanmadeBot.start", refuse)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # only the launcher's own handler
    env = {
        "DISCORD_TOKEN": TOKEN,
        "HUMANMADE_BOT_DB": str(tmp_path / "bot.sqlite3"),
        "HUMANMADE_BOT_SYNC_COMMANDS": "0",
    }
    code = main(["--log-level", "DEBUG"], environ=env)
    out, err = capsys.readouterr()
    assert code == EXIT_FAILED
    assert "Discord refused the token (it is not shown here)" in err
    assert TOKEN not in out and TOKEN not in err
    assert TOKEN.split(".")[-1] not in err


def test_runner_output_is_redacted(capsys, monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])

    def careless(settings: BotSettings) -> int:
        log = logging.getLogger("discord_bot.test")
        log.warning("settings: %r", settings)
        log.warning("oops, the token is %s", settings.token)
        try:
            raise RuntimeError(f"failed with {settings.api_token}")
        except RuntimeError:
            log.exception("boom")
        return EXIT_OK

    env = {
        "DISCORD_TOKEN": TOKEN,
        "HUMANMADE_API_URL": "http://scoring.local",
        "HUMANMADE_API_TOKEN": API_TOKEN,
    }
    assert main([], environ=env, runner=careless) == EXIT_OK
    out, err = capsys.readouterr()
    assert "oops, the token is [redacted]" in err and "failed with [redacted]" in err
    assert TOKEN not in out + err and API_TOKEN not in out + err


def test_redact_filter_keeps_ordinary_records():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    assert RedactSecrets([TOKEN]).filter(record) and record.getMessage() == "hello world"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_discord_unreachable_is_one_line_and_exit_1(capsys, monkeypatch, tmp_path):
    """The real run() against a Discord API address where nothing listens."""

    class FakeScorer:
        max_bytes = 1

        async def close(self) -> None:
            pass

    monkeypatch.setattr(launcher, "build_scorer", lambda settings: FakeScorer())
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{_closed_port()}/api/v10")
    for flag in ("warn_nacl", "warn_dave"):  # as a fresh process has them
        if hasattr(discord.VoiceClient, flag):
            monkeypatch.setattr(discord.VoiceClient, flag, True)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    env = {
        "DISCORD_TOKEN": TOKEN,
        "HUMANMADE_BOT_DB": str(tmp_path / "bot.sqlite3"),
        "HUMANMADE_BOT_SYNC_COMMANDS": "0",
    }
    code = main(["--log-level", "WARNING"], environ=env)
    out, err = capsys.readouterr()
    assert code == EXIT_FAILED and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "could not reach Discord: Cannot connect to host 127.0.0.1" in lines[0]
    assert "voice" not in err.lower()


def test_without_the_discord_extra_it_says_which_to_install(capsys, monkeypatch):
    real = launcher.importlib.util.find_spec
    monkeypatch.setattr(
        launcher.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "discord" else real(name, *a),
    )
    code = main([], environ={"DISCORD_TOKEN": TOKEN})
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG
    assert "pip install 'humanmade[discord]'" in err and "discord not installed" in err


def test_help_lists_every_setting_without_pointing_at_source(capsys):
    from discord_bot.settings import VARIABLES

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"], environ={})
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert all(name in out for name, _, _ in VARIABLES)
    assert "settings.py" not in out and "README.md" in out


def test_readme_invite_permissions_match_what_the_bot_needs():
    import re

    from discord_bot.bot import invite_permissions, invite_url

    readme = (Path(__file__).resolve().parent.parent / "discord_bot" / "README.md").read_text()
    quoted = {int(n) for n in re.findall(r"permissions=(\d+)", readme)}
    assert quoted == {invite_permissions().value, invite_permissions(hold=True).value}
    assert invite_permissions(hold=True).manage_messages
    assert not invite_permissions().manage_messages
    assert "scope=bot+applications.commands" in invite_url(42)
    assert "Message Content Intent" in readme and "scans every channel it can read" in readme
