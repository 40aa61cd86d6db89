"""poracle-bot: check and restart PoracleJS servers, from Discord or the command line."""
