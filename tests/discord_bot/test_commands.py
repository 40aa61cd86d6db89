"""/poracle status and /poracle restart, driven through discord.py's own networking against the double,
with real local health servers and a real OpenSSH sshd."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.discord_bot.client import PoracleBot
from tests.support.discord_double import DiscordDouble
from tests.support.fixtures import lines
from tests.support.local_http import HttpServer, http_server, hung_server, refused_port, status
from tests.support.sshd import SshServer
from tests.support.world import ask_restart, discord_env, final_status, running_bot, server_env, ssh_env

DANGER = 4


@pytest.fixture
async def poracle(
    discord_double: DiscordDouble, api: HttpServer, sshd: SshServer, marker: Path, tmp_path: Path
) -> AsyncIterator[PoracleBot]:
    """One server, Main: its API answers and its restart command appends a line to `marker`."""
    env = discord_env(discord_double, tmp_path / "data")
    env |= ssh_env(sshd, tmp_path / "known_hosts")
    env |= server_env(1, "Main", api.url, sshd, f"echo restarting; echo ran >> {marker}")
    async with running_bot(discord_double, env, confirm_timeout=5) as bot:
        yield bot


async def test_commands_sync_to_the_guild_as_one_guild_only_group(
    discord_double: DiscordDouble, poracle: PoracleBot
) -> None:
    (group,) = discord_double.commands(discord_double.guild_id)
    assert discord_double.commands() == []  # DISCORD_GUILD_ID set: nothing global
    assert group["name"] == "poracle"
    assert group.get("contexts") == [0] or group.get("dm_permission") is False
    subcommands = {option["name"]: option for option in group["options"]}
    assert set(subcommands) == {"status", "restart", "history", "mute", "unmute", "processes", "logs"}
    server, process = subcommands["restart"]["options"]
    assert server["name"] == "server" and server["required"] and server["autocomplete"]
    assert process["name"] == "process" and not process.get("required") and process["autocomplete"]
    (listed,) = subcommands["processes"]["options"]
    assert listed["name"] == "server" and listed["required"] and listed["autocomplete"]
    logs = {option["name"]: option for option in subcommands["logs"]["options"]}
    assert logs["server"]["required"] and logs["process"]["required"] and not logs["lines"].get("required")
    assert logs["server"]["autocomplete"] and logs["process"]["autocomplete"]
    assert (logs["lines"]["min_value"], logs["lines"]["max_value"]) == (1, 200)
    (history_server,) = subcommands["history"]["options"]
    assert not history_server.get("required") and history_server["autocomplete"]
    minutes = {option["name"]: option for option in subcommands["mute"]["options"]}["minutes"]
    assert (minutes["min_value"], minutes["max_value"]) == (1, 10080)


async def test_status_answers_in_time_and_shows_every_kind_of_server(
    discord_double: DiscordDouble, sshd: SshServer, tmp_path: Path
) -> None:
    async with (
        http_server() as good,
        http_server({"/health": status(500)}) as erroring,
        hung_server() as hung,
    ):
        env = discord_env(discord_double, tmp_path / "data", PORACLE_HEALTH_TIMEOUT="2")
        env |= server_env(1, "Good", good.url) | server_env(2, "Erroring", erroring.url)
        env |= server_env(3, "Refused", f"http://127.0.0.1:{refused_port()}") | server_env(4, "Hung", hung.url)
        async with running_bot(discord_double, env):
            started = time.monotonic()
            record = await discord_double.slash(discord_double.admins[0], "poracle", "status", timeout=3)
            first_answer = time.monotonic() - started
            final = await final_status(record)
    assert first_answer < 3
    assert not final.ephemeral
    (embed,) = final.embeds
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert "online" in fields["Good"] and "HTTP 200" in fields["Good"] and " ms" in fields["Good"]
    assert "online" in fields["Erroring"] and "HTTP 500" in fields["Erroring"]
    assert "offline" in fields["Refused"] and "connection refused" in fields["Refused"]
    assert "offline" in fields["Hung"] and "no answer within 2 s" in fields["Hung"]
    assert "down since" in fields["Hung"]
    assert embed["color"] == 0xE67E22  # orange: some down
    assert "timestamp" in embed


async def test_non_admin_is_refused_everything_and_nothing_happens(
    discord_double: DiscordDouble, poracle: PoracleBot, api: HttpServer, marker: Path
) -> None:
    carol = discord_double.member
    checks_before = len(api.requests)
    for args in (("status",), ("restart",)):
        options = {"server": "Main"} if args == ("restart",) else {}
        record = await discord_double.slash(carol, "poracle", *args, **options)
        refusal = await record.wait_original()
        assert refusal.ephemeral and "Only Poracle admins" in refusal.content
    assert await discord_double.autocomplete(carol, "poracle", "restart", "server", "") == []
    assert len(api.requests) == checks_before  # nothing was checked
    assert not marker.exists()  # nothing was run
    assert [m for m in discord_double.messages if not m.ephemeral] == []  # nothing was posted


async def test_what_an_admin_typed_comes_back_in_refusals_pinging_nobody(
    discord_double: DiscordDouble, poracle: PoracleBot
) -> None:
    typed = f"@everyone @here <@&{discord_double.admin_role_id}> <@{discord_double.member.id}>"
    asked = [("history", {"server": typed}), ("processes", {"server": typed}), ("unmute", {"server": typed})]
    for command, options in asked:
        record = await discord_double.slash(discord_double.admins[0], "poracle", command, **options)
        refusal = await record.wait_original()
        assert refusal.ephemeral and typed in refusal.content, (command, refusal.content)
        assert not refusal.pings_everyone and refusal.pinged_role_ids == refusal.pinged_user_ids == set(), command


async def test_autocomplete_offers_the_servers_and_all(discord_double: DiscordDouble, poracle: PoracleBot) -> None:
    alice = discord_double.admins[0]
    choices = await discord_double.autocomplete(alice, "poracle", "restart", "server", "")
    assert [choice["name"] for choice in choices] == ["Main", "all"]
    assert await discord_double.autocomplete(alice, "poracle", "restart", "server", "ma") == [
        {"name": "Main", "value": "Main"}
    ]


async def test_confirmed_restart_runs_the_command_and_announces_it(
    discord_double: DiscordDouble, poracle: PoracleBot, marker: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    prompt, record = await ask_restart(discord_double)
    assert "Main" in prompt.text and "127.0.0.1" in prompt.text and str(marker) in prompt.text
    assert prompt.button("Confirm")["style"] == DANGER and prompt.button("Cancel")
    await discord_double.click(discord_double.admins[0], prompt, "Confirm")
    final = await record.wait_original(lambda m: "Main: restarted" in m.text, timeout=15)
    assert lines(marker) == ["ran"]
    assert "restarting" in final.text and "Answers its health check again: **yes**" in final.text
    assert final.buttons == []
    assert any("restarting..." in version.embeds[0].get("title", "") for version in final.versions if version.embeds)
    announcement = await discord_double.wait_for_message(lambda m: "restarted by" in m.content)
    alice = discord_double.admins[0]
    assert announcement.content == f"**Main** restarted by <@{alice.id}>: restarted"
    assert announcement.pinged_user_ids == set()
    assert f"Restart of Main requested by {alice.name} ({alice.id})" in caplog.text
    assert discord_double.token not in caplog.text


async def test_cancel_runs_nothing(discord_double: DiscordDouble, poracle: PoracleBot, marker: Path) -> None:
    prompt, record = await ask_restart(discord_double)
    await discord_double.click(discord_double.admins[0], prompt, "Cancel")
    final = await record.wait_original(lambda m: "cancelled" in m.text)
    assert final.buttons == []
    assert not marker.exists()


async def test_prompt_expires_with_buttons_disabled(
    discord_double: DiscordDouble, api: HttpServer, sshd: SshServer, marker: Path, tmp_path: Path
) -> None:
    env = discord_env(discord_double, tmp_path / "data") | ssh_env(sshd, tmp_path / "known_hosts")
    env |= server_env(1, "Main", api.url, sshd, f"echo ran >> {marker}")
    async with running_bot(discord_double, env, confirm_timeout=0.3):
        _, record = await ask_restart(discord_double)
        final = await record.wait_original(lambda m: "expired" in m.text)
    assert final.buttons and all(button.get("disabled") for button in final.buttons)
    assert not marker.exists()


async def test_only_the_asking_admin_may_answer(
    discord_double: DiscordDouble, poracle: PoracleBot, marker: Path
) -> None:
    prompt, record = await ask_restart(discord_double)
    bob, carol = discord_double.admins[1], discord_double.member
    for intruder, words in ((bob, "Only <@"), (carol, "Only Poracle admins")):
        click = await discord_double.click(intruder, prompt, "Confirm")
        refusal = await click.wait_followup() if click.response_type == 5 else click.original
        assert refusal is not None and refusal.ephemeral and words in refusal.content
    assert not marker.exists()
    assert not any(button.get("disabled") for button in discord_double.message(prompt.id).buttons)
    await discord_double.click(discord_double.admins[0], prompt, "Cancel")
    await record.wait_original(lambda m: "cancelled" in m.text)


async def test_an_admin_who_lost_the_role_since_asking_cannot_confirm(
    discord_double: DiscordDouble, poracle: PoracleBot, marker: Path
) -> None:
    prompt, record = await ask_restart(discord_double)
    alice = discord_double.admins[0]
    alice.role_ids.remove(discord_double.admin_role_id)  # demoted while the prompt waits
    click = await discord_double.click(alice, prompt, "Confirm")
    refusal = await click.wait_followup() if click.response_type == 5 else click.original
    assert refusal is not None and refusal.ephemeral and refusal.content == "Only Poracle admins can do that."
    assert not marker.exists()  # nothing was run
    assert not any(button.get("disabled") for button in discord_double.message(prompt.id).buttons)
    alice.role_ids.append(discord_double.admin_role_id)  # given it back: the same prompt works for her again
    await discord_double.click(alice, prompt, "Cancel")
    await record.wait_original(lambda m: "cancelled" in m.text)


async def test_a_double_press_runs_the_restart_once(
    discord_double: DiscordDouble, poracle: PoracleBot, marker: Path
) -> None:
    prompt, record = await ask_restart(discord_double)
    alice = discord_double.admins[0]
    first = discord_double.click(alice, prompt, "Confirm", wait=False)
    second = discord_double.click(alice, prompt, "Confirm", wait=False)
    await asyncio.gather(first, second)
    await record.wait_original(lambda m: "Main: restarted" in m.text, timeout=15)
    await asyncio.sleep(0.5)  # room for a second run to show itself, were there one
    assert lines(marker) == ["ran"]
