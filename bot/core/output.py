"""Making remote command output fit to show a person: no terminal codes, the tail kept, bounded size."""

from __future__ import annotations

import re
from collections.abc import Sequence

# CSI sequences (colours, cursor moves), OSC sequences (window titles, links), charset designations
# (`tput sgr0` emits ESC ( B before every colour reset) and lone two-byte escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()*+][0-9A-Za-z]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C1 too: \x9b is a CSI to some terminals
OUTPUT_LIMIT = 900
_CUT_MARK = "…\n"


def clean_output(raw: str, limit: int = OUTPUT_LIMIT) -> str:
    """Strip terminal codes and keep the last `limit` characters (the end is where errors show)."""
    text = _ANSI.sub("", raw).replace("\r\n", "\n")
    # A bare carriage return redraws the line (progress bars): what the terminal would show is the last part.
    # Trailing ones only move the cursor (a pty turns a program's own "\r\n" into "\r\r\n"): they erase nothing.
    text = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip("\n")
    if len(text) > limit:
        text = _CUT_MARK + text[-(limit - len(_CUT_MARK)) :]
    return text


class OutputTail:
    """Keeps only the last `keep` characters of a stream, so a chatty command cannot eat memory."""

    def __init__(self, keep: int = 16 * 1024) -> None:
        self._keep = keep
        self._text = ""

    def feed(self, chunk: str) -> None:
        self._text = (self._text + chunk)[-self._keep :]

    @property
    def text(self) -> str:
        return self._text


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as columns padded to their widest cell (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
