"""Who gets woken, through the Discord double: DISCORD_ALERT_ROLE_ID is pinged once per outage alert and by no
other message (every message's content and allowed mentions are checked, as Discord would apply them), and a
maintenance window holds an outage back, shows in /poracle status and lets it out, pinging, when it ends.
Time is a FakeClock moved a minute per round; Main's API refuses (down) until a test serves it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.clock import START, FakeClock
from tests.support.discord_double import DiscordDouble, Message
from tests.support.local_http import HttpServer, http_server, refused_port
from tests.support.world import ask_status, discord_env, minutes, posts, running_bot, server_env

pytestmark = pytest.mark.usefixtures("token_stays_out_of_the_log")

ON_CALL = 1191168914227200099  # the role to page (the double applies allowed mentions, not role settings)


@pytest.fixture
def main_port() -> int:
    return refused_port()


def paging_env(discord: DiscordDouble, tmp_path: Path, main_port: int, api: HttpServer, **extra: str) -> dict[str, str]:
    env = discord_env(
        discord,
        tmp_path / "data",
        DISCORD_ALERT_ROLE_ID=str(ON_CALL),
        PORACLE_DOWN_AFTER="2",
        PORACLE_REMIND_EVERY="1",
        **extra,
    )
    return env | server_env(1, "Main", f"http://127.0.0.1:{main_port}") | server_env(2, "Other", api.url)


def pages(message: Message) -> bool:
    """Whether Discord notified anyone of this message (when it was posted: edits never notify), checking
    that it could only be the alert role: content exactly its mention, allowed mentions that role alone.
    No version of any message allows more than that."""
    for version in message.versions:
        assert version.allowed_mentions is not None and version.allowed_mentions.get("parse") == []
        assert not version.pinged_user_ids and not version.pings_everyone
        assert set(version.allowed_mentions) <= {"parse", "roles", "replied_user"}
    first = message.versions[0]
    if not first.pinged_role_ids:
        assert "roles" not in first.allowed_mentions  # type: ignore[operator]
        return False
    assert first.pinged_role_ids == {ON_CALL}
    assert first.content == f"<@&{ON_CALL}>"
    assert first.allowed_mentions == {"parse": [], "roles": [ON_CALL]}
    return True


async def test_the_alert_role_is_pinged_once_per_outage_and_by_nothing_else(
    discord_double: DiscordDouble, tmp_path: Path, main_port: int, api: HttpServer
) -> None:
    clock = FakeClock()
    alice = discord_double.admins[0]
    env = paging_env(discord_double, tmp_path, main_port, api)
    async with running_bot(discord_double, env, monitor=False, clock=clock) as bot:
        await minutes(bot, clock, 3)  # the outage, then a reminder
        await ask_status(discord_double)
        form = await discord_double.click(alice, posts(discord_double)[0], "Acknowledge")
        await discord_double.submit_modal(alice, form)
        async with http_server(port=main_port):
            await minutes(bot, clock, 1)  # the recovery
        await minutes(bot, clock, 3)  # down again: a second outage and its reminder
        await discord_double.slash(alice, "poracle", "unmute", server="Main")
    titles = [(m.title, pages(m)) for m in posts(discord_double)]
    assert titles == [
        ("🔴 Main is offline", True),
        ("🔴 Main is still offline", False),
        ("🟢 Main is online again", False),
        ("🔴 Main is offline", True),
        ("🔴 Main is still offline", False),
    ]
    answers = [m for m in discord_double.messages if m.interaction_metadata is not None]
    assert len(answers) == 2 and not any(pages(m) for m in answers)  # the status, the unmute refusal
    # The acknowledged alert was edited: an edit never pings, and the mention stays the role's alone.
    edited = posts(discord_double)[0]
    assert len(edited.versions) == 2 and edited.content == f"<@&{ON_CALL}>"


async def test_a_maintenance_window_holds_the_outage_shows_in_status_and_pages_when_it_ends_still_down(
    discord_double: DiscordDouble, tmp_path: Path, main_port: int, api: HttpServer
) -> None:
    clock = FakeClock()  # Sunday 12:00 UTC
    env = paging_env(
        discord_double,
        tmp_path,
        main_port,
        api,
        PORACLE_MAINTENANCE="sun 11:30-12:10",
        PORACLE_SERVER_2_MAINTENANCE="none",
    )
    async with running_bot(discord_double, env, monitor=False, clock=clock) as bot:
        await minutes(bot, clock, 5)
        held = posts(discord_double)
        status = await ask_status(discord_double)
        await minutes(bot, clock, 6)  # past 12:10
    assert held == []
    end = int((START + timedelta(minutes=10)).timestamp())
    assert f"🛠️ in maintenance until <t:{end}:t>" in status.fields["Main"]
    assert "maintenance" not in status.fields["Other"]
    (outage, *reminders) = posts(discord_double)
    assert outage.title == "🔴 Main is offline" and pages(outage)
    assert not any(pages(reminder) for reminder in reminders)
