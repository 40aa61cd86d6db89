"""`python -m bot` is the same as `poracle-bot`."""

from bot.cli.main import run_main

run_main()
