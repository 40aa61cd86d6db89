"""Hiding secrets in remote text before anyone sees it: the bot's own pass over what poracle-gate sends.

The gate redacts on the server already (it also knows the processes' environments, so it hides a password
printed bare); this is the second line, for a gate that missed something or an old one: the same families
of patterns, with nothing to know about the server. Redact before cutting text short: a cut secret no
longer matches its pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.core.output import OUTPUT_LIMIT, clean_output

REDACTED = "[REDACTED]"
REMOTE_REASON = 500  # characters of remote text quoted in a reason
_SECRET_WORDS = r"(?:secret|token|pass|pwd|key|credential)"


def _keep_quotes(match: re.Match[str]) -> str:
    lead, value = match.group(1), match.group(2)
    quote = value[0] if value[:1] in ('"', "'") else ""
    return f"{lead}{quote}{REDACTED}{quote}"


_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # Discord bot tokens (and JWTs): three base64url parts separated by dots.
    (re.compile(r"[A-Za-z0-9_-]{24,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{20,}"), REDACTED),
    # Webhook URLs (Discord's .../api/webhooks/<id>/<token> and alike): the token.
    (re.compile(r"(/webhooks?/[^\s/]+/)[^\s/?#\"']+", re.IGNORECASE), rf"\1{REDACTED}"),
    # Passwords in connection strings and URLs: scheme://user:PASSWORD@host.
    (re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s/]+@", re.IGNORECASE), rf"\1{REDACTED}@"),
    # Authorization headers, whatever the scheme word.
    (
        re.compile(r"(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|bot|token)?\s*)[^\s\"',;]+", re.IGNORECASE),
        rf"\1{REDACTED}",
    ),
    # NAME=value, NAME: value, "name": "value" where the name says secret.
    (
        re.compile(
            rf"([\"']?[\w.-]*{_SECRET_WORDS}[\w.-]*[\"']?\s*[:=]\s*)(\[REDACTED\]|\"[^\"]*\"|'[^']*'|[^\s\"',;&)}}\]]+)",
            re.IGNORECASE,
        ),
        _keep_quotes,
    ),
)


def redact(text: str) -> str:
    """`text` with every secret the patterns know replaced by [REDACTED]."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def readable(raw: str, limit: int = OUTPUT_LIMIT) -> str:
    """Remote text for people: terminal codes out, secrets redacted, and only then cut to its last `limit`
    characters (clean_output)."""
    return clean_output(redact(clean_output(raw, limit=len(raw) + 1)), limit)


def remote_words(raw: str, limit: int = REMOTE_REASON) -> str:
    """Remote text quoted in a reason (an SSH server's words, the gate's, what answered instead of the gate):
    readable, and on one line, so that it can neither forge a log line nor reflow a message."""
    return " ".join(readable(raw, limit).split())
