"""`python -m bot` is the same as `poracle-bot`."""

from bot.cli import run_main

run_main()
