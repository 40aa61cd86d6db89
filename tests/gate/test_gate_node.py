"""The gate's Node unit tests (tests/gate/poracle-gate.test.js), run here so that `python3 -m pytest` covers
them; and the gate as the Python package ships it, agreeing with the bot's side of the protocol."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.core import gate_protocol
from bot.gate import GATE_FILE_NAME, program_text

ROOT = Path(__file__).resolve().parents[2]
GATE = ROOT / "bot" / "gate" / GATE_FILE_NAME


def test_node_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found on PATH (.ci/run installs it)")
    done = subprocess.run(
        [node, "--test", str(Path(__file__).with_name("poracle-gate.test.js"))],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^# fail 0$", done.stdout, re.MULTILINE), done.stdout


def test_the_package_ships_the_executable_gate() -> None:
    text = program_text()
    assert text == GATE.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env node\n")
    assert os.access(GATE, os.X_OK)


def js_constant(name: str) -> str:
    found = re.search(rf"^const {name} = (.+);$", program_text(), re.MULTILINE)
    assert found, name
    return found.group(1)


def test_the_gate_and_the_bot_agree_on_the_protocol() -> None:
    assert int(js_constant("PROTOCOL")) == gate_protocol.PROTOCOL
    assert js_constant("PROGRAM") == f"'{gate_protocol.PROGRAM}'"
    assert js_constant("VERBS") == "[" + ", ".join(f"'{v}'" for v in gate_protocol.VERBS) + "]"
    assert js_constant("NAME") == f"/^{gate_protocol.NAME_PATTERN.pattern}$/"
    assert int(js_constant("MAX_LOG_LINES")) == gate_protocol.MAX_LOG_LINES
    assert int(js_constant("MAX_COMMAND_BYTES")) == gate_protocol.MAX_COMMAND_BYTES
    digits = len(str(gate_protocol.MAX_PM2_ID))
    assert js_constant("ID") == f"/^(0|[1-9][0-9]{{0,{digits - 1}}})$/"
