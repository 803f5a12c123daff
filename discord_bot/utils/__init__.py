"""Small helpers shared by the cogs: checks and cooldowns, image discovery, wording."""
