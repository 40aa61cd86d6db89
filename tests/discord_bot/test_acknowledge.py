"""The Acknowledge button on outage alerts, through the Discord double: the form, the alert edited, reminders
stopped, the recovery naming who, refusals, a second acknowledgement, and bot restarts in between. Time is a
FakeClock the tests move a minute per round (reminders every minute); the rules themselves are tested against
the core in tests/core/test_watchdog.py.

Main's API is a loopback port that refuses (down) until a test serves it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from bot.discord_bot.client import PoracleBot
from tests.support.clock import FakeClock
from tests.support.discord_double import DiscordDouble, InteractionRecord, Message
from tests.support.local_http import HttpServer, http_server, refused_port
from tests.support.world import (
    REASON,
    acknowledge,
    discord_env,
    open_form,
    posts,
    rounds,
    running_bot,
    server_env,
)

pytestmark = pytest.mark.usefixtures("token_stays_out_of_the_log")

Start = Callable[[], AbstractAsyncContextManager[PoracleBot]]


@pytest.fixture
def main_port() -> int:
    return refused_port()


@pytest.fixture
def env(discord_double: DiscordDouble, tmp_path: Path, main_port: int, api: HttpServer) -> dict[str, str]:
    """Main down after 2 failed checks, reminded of every minute; Other always answers."""
    env = discord_env(discord_double, tmp_path / "data", PORACLE_DOWN_AFTER="2", PORACLE_REMIND_EVERY="1")
    return env | server_env(1, "Main", f"http://127.0.0.1:{main_port}") | server_env(2, "Other", api.url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def log_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


@pytest.fixture
def driven(discord_double: DiscordDouble, env: dict[str, str], clock: FakeClock) -> Start:
    """Start the bot (again, over the same data): its rounds driven by the test on `clock`."""
    return lambda: running_bot(discord_double, env, monitor=False, clock=clock)


async def outage_and_reminder(discord: DiscordDouble, bot: PoracleBot, clock: FakeClock) -> tuple[Message, Message]:
    """Three rounds a minute apart with Main down: its outage alert, then a reminder."""
    await rounds(bot, 3, clock)
    alert, reminder = posts(discord)
    return alert, reminder


def private_answer(record: InteractionRecord) -> str:
    """What the bot told the one who pressed or sent, and only them."""
    answer = record.original
    assert answer is not None and answer.ephemeral, answer
    return answer.content


@pytest.mark.usefixtures("log_info")
async def test_an_admin_acknowledges_with_a_reason_reminders_stop_and_the_recovery_names_who(
    discord_double: DiscordDouble, driven: Start, clock: FakeClock, main_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    alice = discord_double.admins[0]
    async with driven() as bot:
        await rounds(bot, 2, clock)
        (alert,) = posts(discord_double)
        form = await open_form(discord_double, alice, alert)
        sent = await discord_double.submit_modal(alice, form, {REASON: "on it,  the DB is being moved"})
        await rounds(bot, 5, clock)
        after_ack = posts(discord_double)
        async with http_server(port=main_port):
            await rounds(bot, 1, clock)
    modal = form.modal
    assert modal is not None and modal["title"] == "Acknowledge Main"
    (label,) = modal["components"]
    assert label["label"] == REASON and not label["component"]["required"]
    assert sent.response_type == 7  # the alert itself was edited, in the answer to the form
    edited = discord_double.message(alert.id)
    ack = edited.fields["👀 Acknowledged"]
    assert ack.startswith(f"by {alice.name} ({alice.id}) <t:{int(clock.start.timestamp()) + 120}:R>")
    assert ack.endswith(": on it, the DB is being moved")
    restart, acknowledged = edited.buttons
    assert restart["label"] == "Restart" and not restart.get("disabled")
    assert acknowledged["label"] == "Acknowledged" and acknowledged["disabled"]
    assert edited.title == "🔴 Main is offline" and len(edited.versions) == 2
    assert after_ack == [alert]  # no reminder after the acknowledgement
    recovery = posts(discord_double)[-1]
    assert recovery.title == "🟢 Main is online again"
    assert recovery.fields["Acknowledged by"].startswith(f"{alice.name} ({alice.id}) <t:")
    assert recovery.fields["Acknowledged by"].endswith(": on it, the DB is being moved")
    assert f"Outage of Main acknowledged by {alice.name} ({alice.id}): on it, the DB is being moved" in caplog.text


@pytest.mark.usefixtures("log_info")
async def test_the_reason_is_kept_as_one_line_without_terminal_codes(
    discord_double: DiscordDouble, driven: Start, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    alice = discord_double.admins[0]
    async with driven() as bot:
        await rounds(bot, 2, clock)
        (alert,) = posts(discord_double)
        await acknowledge(discord_double, alice, alert, "on it\x1b[2J\x07\nINFO forged line\x1b]0;title\x07")
    assert discord_double.message(alert.id).fields["👀 Acknowledged"].endswith(": on it INFO forged line")
    assert f"acknowledged by {alice.name} ({alice.id}): on it INFO forged line\n" in caplog.text + "\n"
    assert "\x1b" not in caplog.text and "\x07" not in caplog.text


async def test_a_member_without_the_role_can_neither_press_nor_send_the_form(
    discord_double: DiscordDouble, driven: Start, clock: FakeClock
) -> None:
    alice, carol = discord_double.admins[0], discord_double.member
    async with driven() as bot:
        await rounds(bot, 2, clock)
        (alert,) = posts(discord_double)
        pressed = await discord_double.click(carol, alert, "Acknowledge")
        form = await open_form(discord_double, alice, alert)
        sent = await discord_double.submit_modal(carol, form)  # alice's form, sent by carol
        await rounds(bot, 1, clock)
    assert pressed.modal is None and private_answer(pressed) == "Only Poracle admins can do that."
    assert private_answer(sent) == "Only Poracle admins can do that."
    assert len(discord_double.message(alert.id).versions) == 1  # the alert untouched
    assert [m.title for m in posts(discord_double)] == ["🔴 Main is offline", "🔴 Main is still offline"]


async def test_a_second_acknowledgement_is_told_who_was_first_and_one_of_an_outage_over_that_it_is(
    discord_double: DiscordDouble, driven: Start, clock: FakeClock, main_port: int
) -> None:
    alice, bob = discord_double.admins
    async with driven() as bot:
        alert, reminder = await outage_and_reminder(discord_double, bot, clock)
        alices, bobs = await open_form(discord_double, alice, alert), await open_form(discord_double, bob, reminder)
        await discord_double.submit_modal(alice, alices, {REASON: "mine"})
        raced = await discord_double.submit_modal(bob, bobs, {REASON: "no, mine"})
        late = await discord_double.click(bob, reminder, "Acknowledge")
        async with http_server(port=main_port):
            await rounds(bot, 1, clock)
        over = await discord_double.click(bob, reminder, "Acknowledge")
    first = f"**Main**'s outage was already acknowledged by {alice.name} ({alice.id}) <t:"
    assert private_answer(raced).startswith(first) and private_answer(raced).endswith(":R>: mine")
    assert late.modal is None and private_answer(late).startswith(first)
    assert over.modal is None and private_answer(over) == "**Main**'s outage is over: nothing to acknowledge."
    assert len(discord_double.message(reminder.id).versions) == 1  # bob's form changed nothing
    assert "no, mine" not in discord_double.message(alert.id).text


async def test_acknowledge_works_on_an_alert_posted_before_a_bot_restart_and_outlasts_another(
    discord_double: DiscordDouble, driven: Start, clock: FakeClock, main_port: int
) -> None:
    async with driven() as bot:
        alert, reminder = await outage_and_reminder(discord_double, bot, clock)
    alice = discord_double.admins[0]
    async with driven():
        sent = await acknowledge(discord_double, alice, alert, "after a restart")
    async with driven() as bot:
        pressed = await discord_double.click(discord_double.admins[1], reminder, "Acknowledge")
        await rounds(bot, 3, clock)
        quiet = posts(discord_double)
        async with http_server(port=main_port):
            await rounds(bot, 1, clock)
    assert sent.response_type == 7
    assert "after a restart" in discord_double.message(alert.id).fields["👀 Acknowledged"]
    assert private_answer(pressed).startswith(f"**Main**'s outage was already acknowledged by {alice.name}")
    assert quiet == [alert, reminder]  # no reminders since
    recovery = posts(discord_double)[-1]
    assert recovery.title == "🟢 Main is online again"
    assert "after a restart" in recovery.fields["Acknowledged by"]


async def test_an_alert_about_several_servers_names_the_one_acknowledged_within_discords_limits(
    discord_double: DiscordDouble, tmp_path: Path, clock: FakeClock
) -> None:
    long_name = "Beta " + "x" * 95  # as long as a name may be: the button label and the form title are cut
    env = discord_env(discord_double, tmp_path / "data", PORACLE_DOWN_AFTER="1")
    env |= server_env(1, "Alpha", f"http://127.0.0.1:{refused_port()}")
    env |= server_env(2, long_name, f"http://127.0.0.1:{refused_port()}")
    alice = discord_double.admins[0]
    async with running_bot(discord_double, env, monitor=False, clock=clock) as bot:
        await rounds(bot, 1, clock)
        (alert,) = posts(discord_double)
        beta = alert.buttons[3]["custom_id"]
        form = await discord_double.click(alice, alert, custom_id=beta)
        sent = await discord_double.submit_modal(alice, form)
    assert form.modal is not None and form.modal["title"] == f"Acknowledge {long_name}"[:44] + "…"
    assert sent.response_type == 7
    edited = discord_double.message(alert.id)
    assert edited.fields[f"👀 Acknowledged: {long_name}"].startswith(f"by {alice.name} ({alice.id}) <t:")
    labels = [[(b["label"], bool(b.get("disabled"))) for b in row["components"]] for row in edited.components]
    assert labels == [
        [("Restart Alpha", False), ("Acknowledge Alpha", False)],
        [(f"Restart {long_name}"[:79] + "…", False), (f"Acknowledged {long_name}"[:79] + "…", True)],
    ]
    assert [(r.method, r.status) for r in discord_double.requests if r.status >= 400] == []
