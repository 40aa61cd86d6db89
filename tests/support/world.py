"""Running the real PoracleBot against the Discord double, with servers that are real local processes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from bot.config import load_settings
from bot.core.clock import SYSTEM_CLOCK, Clock
from bot.core.service import PoracleService
from bot.core.store import Store
from bot.discord_bot.client import PoracleBot, PoracleFront
from tests.support.clock import FakeClock
from tests.support.discord_double import DiscordDouble, InteractionRecord, Message, User
from tests.support.local_http import HttpServer
from tests.support.sshd import SshServer

RESTART_TIMEOUT = 15.0  # an ssh command costs ~0.5 s here; the generous bound is only hit when a test fails
REASON = "Reason (optional)"  # the one field of the Acknowledge form


def discord_env(discord: DiscordDouble, data_dir: Path, **extra: str) -> dict[str, str]:
    """The bot's Discord settings for the double's seeded guild; the monitor runs once and then rests."""
    return {
        "DISCORD_TOKEN": discord.token,
        "DISCORD_GUILD_ID": str(discord.guild_id),
        "DISCORD_ADMIN_ROLE_IDS": str(discord.admin_role_id),
        "DISCORD_ALERT_CHANNEL_ID": str(discord.channel_id),
        "PORACLE_DATA_DIR": str(data_dir),
        "PORACLE_HEALTH_TIMEOUT": "1",
        "PORACLE_HEALTH_INTERVAL": "3600",
        **extra,
    }


def ssh_env(sshd: SshServer, known_hosts: Path, **extra: str) -> dict[str, str]:
    return {
        "PORACLE_SSH_KEY_PATH": str(sshd.client_key),
        "PORACLE_SSH_KNOWN_HOSTS": str(sshd.write_known_hosts(known_hosts)),
        "PORACLE_SSH_HOST_KEY_POLICY": "strict",
        "PORACLE_SSH_CONNECT_TIMEOUT": "5",
        **extra,
    }


def server_env(
    number: int, name: str, api: str, sshd: SshServer | None = None, command: str = "true"
) -> dict[str, str]:
    env = {
        f"PORACLE_SERVER_{number}_NAME": name,
        f"PORACLE_SERVER_{number}_HOST": "127.0.0.1",
        f"PORACLE_SERVER_{number}_API": api,
        f"PORACLE_SERVER_{number}_RESTART_CMD": command,
    }
    if sshd is not None:
        env[f"PORACLE_SERVER_{number}_SSH_PORT"] = str(sshd.port)
        env[f"PORACLE_SERVER_{number}_SSH_USER"] = sshd.user
    return env


@contextlib.asynccontextmanager
async def bot_front(
    env: Mapping[str, str],
    *,
    confirm_timeout: float = 60.0,
    pager_timeout: float = 60.0,
    clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[PoracleFront]:
    """The production bot's front over a store in PORACLE_DATA_DIR, neither monitoring nor connected yet."""
    settings = load_settings(env)
    store = Store.open(settings.data_dir)
    try:
        service = PoracleService(settings, store, clock=clock)
        yield PoracleFront(service, confirm_timeout=confirm_timeout, pager_timeout=pager_timeout)
    finally:
        store.close()


@contextlib.asynccontextmanager
async def running_bot(
    discord: DiscordDouble,
    env: Mapping[str, str],
    *,
    confirm_timeout: float = 60.0,
    pager_timeout: float = 60.0,
    monitor: bool = True,
    clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[PoracleBot]:
    """The production bot, its monitor running (unless `monitor` is False: the test then drives the rounds
    with `bot.watchdog.run_round()`), connected to the double for the duration of the block. `clock`: the
    time of the checks, the monitor and the store (a FakeClock lets a test move through minutes at once)."""
    async with bot_front(env, confirm_timeout=confirm_timeout, pager_timeout=pager_timeout, clock=clock) as front:
        bot = front.new_client()
        async with contextlib.AsyncExitStack() as stack:
            if monitor:
                await stack.enter_async_context(front.monitoring())
            else:
                await stack.enter_async_context(front.service)
                stack.push_async_callback(front.watchdog.close)  # automatic restarts still running, as monitoring()
            await stack.enter_async_context(discord.connected(bot))
            yield bot


async def rounds(bot: PoracleBot, count: int, clock: FakeClock | None = None, every: float = 60) -> None:
    """Run `count` monitor rounds now, one after the other (for a bot started with monitor=False); with the
    bot's FakeClock, `every` seconds apart. Each waits for the automatic restarts it started to end."""
    for _ in range(count):
        await bot.watchdog.run_round()
        await bot.watchdog.settled()
        if clock is not None:
            clock.advance(every)


async def monitor_rounds(counter: HttpServer, count: int, timeout: float = 5.0) -> None:
    """Wait until the monitor has started `count` more rounds: `counter` is a configured server that
    always answers, so each round asks it once."""
    target = len(counter.requests) + count
    deadline = time.monotonic() + timeout
    while len(counter.requests) < target:
        assert time.monotonic() < deadline, f"only {len(counter.requests)} of {target} rounds in {timeout} s"
        await asyncio.sleep(0.02)


def status_checked(message: Message) -> bool:
    """The answer to /poracle status once every server was checked afresh (no longer "checking...")."""
    footers = [str(embed.get("footer", {}).get("text", "")) for embed in message.embeds]
    return bool(footers) and not any(footer.endswith("checking...") for footer in footers)


async def ask_status(discord: DiscordDouble, channel_id: int | None = None, timeout: float = 5.0) -> Message:
    """alice's /poracle status, in its final version."""
    record = await discord.slash(discord.admins[0], "poracle", "status", channel_id=channel_id)
    return await final_status(record, timeout)


async def final_status(record: InteractionRecord, timeout: float = 5.0) -> Message:
    return await record.wait_original(status_checked, timeout=timeout)


def posts(discord: DiscordDouble) -> list[Message]:
    """What the bot posted in the alert channel on its own, not in answer to a command."""
    return [m for m in discord.channel_messages() if m.interaction_metadata is None]


async def confirmed_restart_elsewhere(discord: DiscordDouble, server: str) -> InteractionRecord:
    """alice asks a bot running in another process to restart `server`, and confirms. That bot may need more
    than the double's REACTION_TIME to read Discord's answer and listen for the prompt's buttons; a click
    before that goes unanswered, and alice clicks again, as people do."""
    alice = discord.admins[0]
    record = await discord.slash(alice, "poracle", "restart", server=server)
    prompt = await record.wait_original()
    for _ in range(5):
        click = await discord.click(alice, prompt, "Confirm", wait=False)
        with contextlib.suppress(TimeoutError):
            await click.wait_response(timeout=1.0)
            break
    return record


async def ask_restart(discord: DiscordDouble, server: str = "Main") -> tuple[Message, InteractionRecord]:
    """alice asks to restart `server`; returns the prompt and the interaction record."""
    alice = discord.admins[0]
    record = await discord.slash(alice, "poracle", "restart", server=server)
    prompt = await record.wait_original()
    return prompt, record


async def confirmed_restart(
    discord: DiscordDouble, server: str = "Main", timeout: float = RESTART_TIMEOUT, **options: str
) -> tuple[Message, InteractionRecord]:
    """alice asks to restart `server` (with `options`, e.g. process=) and confirms; returns the final message
    (with a result) and the record."""
    alice = discord.admins[0]
    record = await discord.slash(alice, "poracle", "restart", server=server, **options)
    prompt = await record.wait_original()
    await discord.click(alice, prompt, "Confirm")
    final = await record.wait_original(lambda m: is_result(m), timeout=timeout)
    return final, record


def is_result(message: Message) -> bool:
    """The prompt once it shows the outcome (not the prompt itself, not `restarting...`)."""
    title = message.embeds[0].get("title", "") if message.embeds else ""
    return not title.startswith("Restart ") or title.startswith("Restart of ")


def alerts(discord: DiscordDouble) -> list[Message]:
    """What the bot posted in the alert channel with an embed (alerts; not prompts or announcements)."""
    return [
        m
        for m in discord.channel_messages()
        if m.author.id == discord.bot_user.id and m.embeds and m.interaction_metadata is None
    ]


async def wait_alert(discord: DiscordDouble, words: str, timeout: float = 5.0) -> Message:
    return await discord.wait_for_message(
        lambda m: m in alerts(discord) and words in m.title, timeout=timeout, channel_id=discord.channel_id
    )


async def open_form(discord: DiscordDouble, user: User, alert: Message) -> InteractionRecord:
    record = await discord.click(user, alert, "Acknowledge")
    assert record.modal is not None, record.response_data
    return record


async def acknowledge(discord: DiscordDouble, user: User, alert: Message, reason: str = "") -> InteractionRecord:
    """`user` presses Acknowledge on `alert` and sends the form."""
    return await discord.submit_modal(user, await open_form(discord, user, alert), {REASON: reason})
