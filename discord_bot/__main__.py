"""`python -m discord_bot`: start the bot (see `discord_bot.launcher`)."""

from discord_bot.launcher import main

raise SystemExit(main())
