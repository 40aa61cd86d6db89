"""Discord's limits hold for every message, enforced in one place: no module of the front sends or edits a
message except through outgoing.py, and the longest names and outputs the configuration allows go through
every command, button and alert without one 400 from the double (which answers oversized messages as
Discord does)."""

from __future__ import annotations

import ast
from pathlib import Path

import bot.discord_bot
from bot.discord_bot.client import PoracleBot
from tests.support.discord_double import DiscordDouble, Message
from tests.support.local_http import HttpServer, refused_port
from tests.support.sshd import SshServer
from tests.support.world import ask_status, discord_env, rounds, running_bot, server_env, ssh_env

FRONT = Path(bot.discord_bot.__file__).parent
# discord.py's ways of sending or editing a message, from an interaction, a webhook, a channel or a message.
SENDING = {"send", "send_message", "edit", "edit_message", "edit_original_response", "send_modal"}


def sending_calls(path: Path) -> list[str]:
    return [
        f"{path.name}:{node.lineno} .{node.func.attr}()"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SENDING
    ]


def test_only_outgoing_sends_or_edits_messages() -> None:
    assert sending_calls(FRONT / "outgoing.py"), "the scan found nothing in outgoing.py: it would prove nothing"
    others = [call for path in sorted(FRONT.glob("*.py")) if path.name != "outgoing.py" for call in sending_calls(path)]
    assert others == []


def long_name(number: int) -> str:
    """As long as a server name may be (100), with Markdown and a mention in it."""
    return f"{number:02} **@everyone** <@&1> `~_|" + "x" * (100 - 28)


async def test_the_longest_names_and_outputs_fit_every_message(
    discord_double: DiscordDouble, sshd: SshServer, api: HttpServer, tmp_path: Path
) -> None:
    env = discord_env(discord_double, tmp_path / "data", PORACLE_DOWN_AFTER="1", PORACLE_SSH_TIMEOUT="20")
    env |= ssh_env(sshd, tmp_path / "known_hosts")
    chatty = "for i in $(seq 1 400); do echo line $i of a restart that says a lot; done; exit 3"
    for number in range(1, 31):  # two real restarts with long outputs, 28 that cannot connect
        if number <= 2:
            env |= server_env(number, long_name(number), api.url, sshd, chatty)
        else:
            env |= server_env(number, long_name(number), f"http://127.0.0.1:{refused_port()}", None, "true")
            env[f"PORACLE_SERVER_{number}_SSH_PORT"] = str(refused_port())
    alice = discord_double.admins[0]
    async with running_bot(discord_double, env, monitor=False) as bot:
        await rounds(bot, 1)  # 28 servers down in one round: one alert
        await ask_status(discord_double, timeout=10)
        await ask(discord_double, "restart", server="nope")
        prompt = await ask(discord_double, "restart", server="all")
        record = await discord_double.click(alice, prompt, "Confirm")
        await record.wait_original(lambda m: "Restart of 30 servers" in m.title, timeout=30)
        await ask(discord_double, "history")
        await ask(discord_double, "mute", server="all", minutes=5)
        await ask(discord_double, "unmute", server="all")
        choices = await discord_double.autocomplete(alice, "poracle", "restart", "server", "")
        await discord_double.wait_for_message(lambda m: "restarted by" in m.content, timeout=5)
        assert_nothing_refused(discord_double, bot)
    assert len(choices) == 25
    posted = [m for m in discord_double.channel_messages() if m.interaction_metadata is None]
    assert len(posted) == 2  # the alert and the announcement
    assert all(not m.pings_everyone and not m.pinged_role_ids and not m.pinged_user_ids for m in posted)


async def ask(discord: DiscordDouble, *command: str, **options: object) -> Message:
    record = await discord.slash(discord.admins[0], "poracle", *command, **options)
    return await record.wait_original(lambda m: not m.loading, timeout=10)


def assert_nothing_refused(discord: DiscordDouble, bot: PoracleBot) -> None:
    refused = [(r.method, r.path, r.status) for r in discord.requests if r.status >= 400]
    assert refused == [], f"Discord refused {refused} for {len(bot.settings.servers)} long names"
