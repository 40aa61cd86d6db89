"""poracle-gate, the program installed on each server as the forced command of the bot's SSH key.

It is JavaScript for Node.js (pm2 needs node, python is not always there); this package only ships it, so
the bot can show or install it. The protocol the bot speaks with it: bot/core/gate_protocol.py, PROTOCOL.md.
"""

import re
from importlib import resources

GATE_FILE_NAME = "poracle-gate.js"
_VERSION = re.compile(r"^const VERSION = '(\d+\.\d+\.\d+)';$", re.MULTILINE)


def program_text() -> str:
    """The gate's source, as shipped in this package."""
    return resources.files(__name__).joinpath(GATE_FILE_NAME).read_text(encoding="utf-8")


def version() -> str:
    """The version of the gate shipped in this package (what `hello` answers once it is installed)."""
    found = _VERSION.search(program_text())
    if found is None:  # a packaging mistake, not something an operator can fix
        raise RuntimeError(f"no VERSION in {GATE_FILE_NAME}")
    return found.group(1)
