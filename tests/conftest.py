"""Shared pytest configuration: fixture plugins used across the test suite."""

pytest_plugins = ["tests.discord_double.fixture", "tests.sshd", "tests.pm2", "tests.common"]
