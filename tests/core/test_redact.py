"""The bot's own redaction of remote text: the same families of patterns as the gate's, proved by running the
gate's own redact() (in node) on the same texts; and cleaning before redacting before cutting."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from bot.core.redact import REDACTED, readable, redact
from tests.support.gate import GATE

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAx.GaBcDe.abcdefghijklmnopqrstuvwxyz012345"
CASES = [
    ("logged in with " + TOKEN + " ok", "logged in with [REDACTED] ok"),
    (
        "hook https://discord.com/api/webhooks/123456789/AbC-dEf_123456789xyz?wait=1",
        "hook https://discord.com/api/webhooks/123456789/[REDACTED]?wait=1",
    ),
    ("https://discordapp.com/api/v10/webhooks/1/tok", "https://discordapp.com/api/v10/webhooks/1/[REDACTED]"),
    ("db mysql://poracle:s3cr%t@db:3306/poracle", "db mysql://poracle:[REDACTED]@db:3306/poracle"),
    ("postgres://u:p@ss@host/db", "postgres://u:[REDACTED]@host/db"),
    ("Authorization: Bearer abc.def", "Authorization: Bearer [REDACTED]"),
    ("x-poracle-secret: hunter2", "x-poracle-secret: [REDACTED]"),
    ("FOO_TOKEN=abc123 next", "FOO_TOKEN=[REDACTED] next"),
    ('{"password": "my pass word", "user": "bob"}', '{"password": "[REDACTED]", "user": "bob"}'),
    ("dbPass: 'x y'", "dbPass: '[REDACTED]'"),
    ("GET /x?key=0123456789abcdef&page=2", "GET /x?key=[REDACTED]&page=2"),
    ("apiSecret=QUJDREVGR0hJSktMTU5PUA==", "apiSecret=[REDACTED]"),
    ("credentials=(a) done", "credentials=[REDACTED]) done"),
    ("DISCORD_TOKEN=[REDACTED] already", "DISCORD_TOKEN=[REDACTED] already"),
    ("nothing secret here: 42 pokemon", "nothing secret here: 42 pokemon"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_family_of_secrets_is_hidden(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_patterns_are_the_gates_own() -> None:
    node = shutil.which("node")
    assert node is not None, "node not found on PATH (.ci/run installs it)"
    texts = [text for text, _ in CASES]
    script = (
        f"const gate = require({json.dumps(str(GATE))});"
        f"console.log(JSON.stringify({json.dumps(texts)}.map(text => gate.redact(text, []))));"
    )
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(done.stdout) == [redact(text) for text in texts]


def test_escapes_go_first_secrets_next_and_only_then_is_it_cut() -> None:
    # A colour code inside the name would hide it from the pattern; a cut first would leave half a token.
    raw = "\x1b[31mDISCORD_\x1b[0mTOKEN=" + TOKEN + "\r\n" + "x" * 40 + "\n" + "end " + TOKEN
    shown = readable(raw, limit=60)
    assert TOKEN[:20] not in shown and "\x1b" not in shown
    assert shown.endswith("end " + REDACTED)
    assert readable(raw, limit=10_000).startswith("DISCORD_TOKEN=[REDACTED]\n")
