"""Tests mirror the package and share only through tests/support: no module under tests/ imports a test
module (a helper two test modules need lives once in tests/support, the Discord double included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SHARED = ["tests", "support"]


def module_of(path: Path) -> str:
    """The dotted name of a file under tests/, `__init__` kept so that relative imports resolve alike."""
    return ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)


def absolute(node: ast.ImportFrom, module: str) -> str:
    """What `from ... import` in `module` imports from, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    package = ".".join(module.split(".")[: -node.level])
    return f"{package}.{node.module}" if node.module else package


def is_package(name: str) -> bool:
    return TESTS.parent.joinpath(*name.split(".")).is_dir()


def is_shared(name: str) -> bool:
    """tests.support and what is in it, but not its own test modules."""
    parts = name.split(".")
    return parts[:2] == SHARED and not any(part.startswith("test_") for part in parts)


def imported_test_modules(source: str, module: str) -> list[str]:
    """The modules under tests/ outside tests/support that `source`, the text of `module`, imports."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = absolute(node, module)
            # from a package, each name may be a module of it: `from tests.core import test_store`
            names += [f"{base}.{alias.name}" for alias in node.names] if is_package(base) else [base]
    return [name for name in names if name.split(".")[0] == "tests" and not is_shared(name)]


def test_no_module_under_tests_imports_a_test_module() -> None:
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 50, "the test modules were not found: this test would prove nothing"
    found = {str(path.relative_to(TESTS)): imported_test_modules(path.read_text(), module_of(path)) for path in files}
    assert {path: names for path, names in found.items() if names} == {}


@pytest.mark.parametrize(
    ("module", "source", "imported"),
    [
        ("tests.core.test_push", "from tests.core.test_watchdog import Fleet", "tests.core.test_watchdog"),
        ("tests.cli.test_doctor_gate", "import tests.cli.test_doctor", "tests.cli.test_doctor"),
        ("tests.test_lock", "from tests.discord_bot import test_alerts", "tests.discord_bot.test_alerts"),
        ("tests.core.test_selfheal", "from .test_watchdog import Sink", "tests.core.test_watchdog"),
        ("tests.core.test_push", "from .. import test_config", "tests.test_config"),
        ("tests.test_lock", "from tests import conftest", "tests.conftest"),
        ("tests.core.test_push", "from tests.support import test_sshd_and_pm2", "tests.support.test_sshd_and_pm2"),
        ("tests.support.world", "from tests.core.test_store import rows", "tests.core.test_store"),
    ],
)
def test_each_way_of_importing_a_test_module_is_caught(module: str, source: str, imported: str) -> None:
    assert imported_test_modules(f"def f() -> None:\n    {source}\n", module) == [imported]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("tests.core.test_push", "from tests.support.watchdog import Fleet"),
        ("tests.discord_bot.test_alerts", "from tests.support.discord_double import DROP, DiscordDouble"),
        ("tests.cli.test_doctor", "import tests.support.doctor"),
        ("tests.test_lock", "from tests import support"),
        ("tests.core.test_push", "from tests.support import clock, world"),
        ("tests.support.discord_double.__init__", "from .driver import DiscordDouble"),
        ("tests.support.discord_double.driver", "from . import model"),
        ("tests.core.test_store", "from bot.core import store\nimport bot.core.store"),
    ],
)
def test_support_and_the_package_may_be_imported(module: str, source: str) -> None:
    assert imported_test_modules(source, module) == []
