"""The core knows nothing of its fronts: no module under bot/core imports discord.py, bot.discord_bot or
bot.cli, directly or through anything it imports."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import bot.core
from tests.support.cli import ROOT, cli_env

FORBIDDEN = ("discord", "bot.discord_bot", "bot.cli")
CORE = Path(bot.core.__file__).parent


def core_modules() -> list[str]:
    return sorted(f"bot.core.{info.name}" for info in pkgutil.iter_modules([str(CORE)]))


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def is_forbidden(name: str) -> bool:
    return any(name == root or name.startswith(f"{root}.") for root in FORBIDDEN)


def test_no_core_module_names_a_front_or_discord() -> None:
    found = {path.name: sorted(filter(is_forbidden, imported_names(path))) for path in sorted(CORE.glob("*.py"))}
    assert len(found) >= 10, "the core's modules were not found: this test would prove nothing"
    assert {name: imports for name, imports in found.items() if imports} == {}


def test_importing_the_whole_core_loads_neither_discord_nor_a_front() -> None:
    modules = core_modules()
    probe = (
        f"import importlib, sys\nfor name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] == 'discord' or m.startswith({FORBIDDEN[1:]!r})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert "bot.core.watchdog" in modules and "bot.core.service" in modules
