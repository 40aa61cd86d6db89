"""Imported by Python at start-up when this directory is on PYTHONPATH: points discord.py at the test's
Discord double on 127.0.0.1, port DISCORD_DOUBLE_PORT, before the bot runs. The same two attributes the
discord_double fixture patches in the test process; nothing of the bot changes. tests/support/bot_process.py
starts bot processes with it, tests/image mounts it into the image's container."""

import os

if port := os.environ.get("DISCORD_DOUBLE_PORT"):
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = f"http://127.0.0.1:{port}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{port}/")
