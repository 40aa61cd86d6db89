"""poracle-gate, the program installed on each server as the forced command of the bot's SSH key.

It is JavaScript for Node.js (pm2 needs node, python is not always there); this package only ships it, so
the bot can show or install it. The protocol the bot speaks with it: bot/core/gate_protocol.py, PROTOCOL.md.
"""

from importlib import resources

GATE_FILE_NAME = "poracle-gate.js"


def program_text() -> str:
    """The gate's source, as shipped in this package."""
    return resources.files(__name__).joinpath(GATE_FILE_NAME).read_text(encoding="utf-8")
