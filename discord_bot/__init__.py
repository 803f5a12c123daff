"""humanmade's Discord bot: scores images posted in a server and tells its moderators.

The score is advisory: the bot reacts, replies or reports to a mod-log channel, and
moderators decide what happens. Layout, in the style of discord.py's own large bots:

- `launcher` (`humanmade-bot` / `python -m discord_bot`): logging, settings, start-up;
- `settings`: what the environment configures (token, database, remote scoring server);
- `bot`: the `HumanmadeBot` subclass, which loads one cog per feature;
- `cogs/`: `scan` (watches messages), `check` (`/check` and the "Check image" menu),
  `config` (`/humanmade config ...` and `/humanmade about`);
- `scoring`: the scorer interface, local (`detector_core`, off the event loop) or remote
  (the Django app's REST API);
- `store`: per-guild settings in SQLite;
- `utils/`: checks and cooldowns, image discovery in messages, message wording.
"""
