"""The service core: health checks, SSH restarts, the monitor and its rounds, the store.

Nothing here imports discord.py or a front end (bot.discord_bot, bot.cli); tests/core/test_layering.py
keeps it so. The fronts call into the core and render what it returns.
"""
