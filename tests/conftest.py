"""Shared pytest configuration: the fixture plugins in tests/support, used across the suite."""

pytest_plugins = [
    "tests.support.discord_double.fixture",
    "tests.support.sshd",
    "tests.support.pm2",
    "tests.support.fixtures",
    "tests.support.gate",
]
