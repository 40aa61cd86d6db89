"""The Discord front: the client, the /poracle commands, buttons, embeds, the alert channel, live status.

Thin by design: every decision is taken in bot.core; this package turns results into Discord messages.
"""
