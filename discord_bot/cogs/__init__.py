"""One cog per feature: `scan`, `check`, `config`."""
