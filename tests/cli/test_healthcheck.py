"""`poracle-bot healthcheck` (Docker's HEALTHCHECK): 0 only with a fresh heartbeat; the words say whether the
bot is connected to Discord."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.core import heartbeat
from bot.core.heartbeat import Heartbeat

# With these, a heartbeat may be 3 x 60 + 5 + 60 = 245 s old.
INTERVAL, TIMEOUT, LIMIT = 60, 5, 245


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(
        f"PORACLE_DATA_DIR={tmp_path / 'data'}\n"
        f"PORACLE_HEALTH_INTERVAL={INTERVAL}\n"
        f"PORACLE_HEALTH_TIMEOUT={TIMEOUT}\n"
        "PORACLE_SERVER_1_HOST=127.0.0.1\n"
        "PORACLE_SERVER_1_API=http://127.0.0.1:9\n"
    )
    return path


def beat(env_file: Path, age_s: float) -> None:
    """The heartbeat of a connected bot whose last round ended `age_s` ago."""
    heartbeat.write(env_file.parent / "data", Heartbeat(datetime.now(UTC) - timedelta(seconds=age_s), True))


def healthcheck(env_file: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--env-file", str(env_file), "healthcheck"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_fresh_heartbeat_of_a_connected_bot_is_healthy(env_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    beat(env_file, age_s=1)
    code, out = healthcheck(env_file, capsys)
    assert code == 0
    assert out.startswith("healthy")


def test_a_heartbeat_near_the_limit_is_still_healthy(env_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    beat(env_file, age_s=LIMIT - 10)
    assert healthcheck(env_file, capsys)[0] == 0


def test_a_stale_heartbeat_is_unhealthy(env_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    beat(env_file, age_s=LIMIT + 10)
    code, out = healthcheck(env_file, capsys)
    assert code == 1
    assert out.startswith("unhealthy: last monitor round ended")
    assert len(out.strip().splitlines()) == 1


def test_a_bot_away_from_discord_is_healthy_and_says_since_when_and_what_waits(
    env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Monitoring works, and restarting the container would not bring Discord back: healthy, in honest words.
    lost = datetime.now(UTC) - timedelta(minutes=12, seconds=5)
    away = Heartbeat(datetime.now(UTC) - timedelta(seconds=1), False, lost, 3)
    heartbeat.write(env_file.parent / "data", away)
    assert healthcheck(env_file, capsys) == (
        0,
        "healthy: monitoring; not connected to Discord for 12 min, 3 alerts waiting\n",
    )


@pytest.mark.parametrize("content", [None, "{not json"], ids=["missing", "garbled"])
def test_missing_or_unreadable_heartbeat_is_unhealthy(
    env_file: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    if content is not None:
        (env_file.parent / "data").mkdir()
        (env_file.parent / "data" / heartbeat.FILE_NAME).write_text(content)
    code, out = healthcheck(env_file, capsys)
    assert code == 1
    assert "no heartbeat" in out


def test_needs_no_token_no_servers_reachable_and_is_fast(env_file: Path) -> None:
    beat(env_file, age_s=1)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--env-file", str(env_file), "healthcheck"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done
    assert time.monotonic() - started < 5  # Docker gives it 10 s; the servers (port 9) are never contacted
