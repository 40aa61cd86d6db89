"""Setting up without Docker, on Debian or Ubuntu as they ship: the test tools are pinned to exact versions
(and those are what runs), and nothing installs into, or tells anyone to break, the system's Python (PEP 668):
the README's way is ./poracle-bot, which keeps the bot in its own virtual environment, as .ci/run does.
(That ./poracle-bot and .ci/run work on a fresh Debian 12 is shown by running them there; see the report of
the change that made them. Tests may not download packages.)"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def test_the_test_tools_are_pinned_exactly_and_installed_as_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for line in project["project"]["optional-dependencies"]["test"]:
        requirement = Requirement(line)
        (pin,) = requirement.specifier
        assert pin.operator == "==", f"{line}: pin it to one version, or a new release can break CI"
        assert importlib.metadata.version(requirement.name) == pin.version, f"{line}: another version runs"


@pytest.mark.parametrize("path", ["README.md", ".ci/run", "poracle-bot"])
def test_nothing_breaks_the_system_python(path: str) -> None:
    text = (ROOT / path).read_text()
    assert not re.search(r"break[-_]system[-_]packages", text, re.IGNORECASE)
    commands = re.findall(r"^\s*(?:\S*python\S*\s+-m\s+)?pip3?\s+install\b.*$", text, re.MULTILINE)
    outside = [command for command in commands if "venv/bin/python" not in command]
    assert not outside, f"{path}: pip install outside a virtual environment: {outside}"


def test_the_readme_runs_the_bot_through_its_virtual_environment() -> None:
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "pip install ." not in quick_start
    assert "./poracle-bot doctor" in quick_start
    assert "bash .ci/run" in quick_start and "python3 -m pytest" in quick_start


@pytest.mark.parametrize("script", ["poracle-bot", ".ci/run"])
def test_the_setup_scripts_are_valid_shell(script: str) -> None:
    path = ROOT / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    shell = "sh" if path.read_text().startswith("#!/bin/sh") else "bash"
    subprocess.run([shell, "-n", str(path)], check=True, timeout=10)


def test_a_failed_install_says_what_it_needs_and_is_tried_again_next_time(tmp_path: Path) -> None:
    # A checkout whose .venv exists but whose pip cannot download (no network, as in this test).
    for name in ("poracle-bot", "pyproject.toml"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    (tmp_path / "poracle-bot").chmod(0o755)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho 'ERROR: No matching distribution found for discord.py' >&2\nexit 1\n")
    python.chmod(0o755)
    run = subprocess.run([str(tmp_path / "poracle-bot"), "check"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 1, run
    assert "ERROR: No matching distribution found for discord.py" in run.stderr
    assert "poracle-bot: pip could not install the bot into" in run.stderr
    assert "check\nporacle-bot: this machine reaches pypi.org, or name a mirror in PIP_INDEX_URL" in run.stderr
    assert not (tmp_path / ".venv" / ".installed").exists()  # the next run tries again
