"""Tests of the Discord test double itself, driven by a plain discord.py ``commands.Bot``.

The bot here is built inside the tests (not our bot package): it proves the double speaks the
protocol discord.py expects, so tests of the real bot exercise what runs in production.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.support.discord_double import DiscordDouble, Message

SERVERS = ["Main", "Backup", "Staging"]


@dataclass
class Seen:
    """What the test bot observed, for assertions."""

    clicks: list[tuple[int, str]] = field(default_factory=list)
    commands: list[tuple[int, str]] = field(default_factory=list)
    resumed: int = 0


class ConfirmView(discord.ui.View):
    def __init__(self, seen: Seen, server: str) -> None:
        super().__init__(timeout=60)
        self.seen, self.server = seen, server

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmView]) -> None:
        self.seen.clicks.append((interaction.user.id, "Confirm"))
        await interaction.response.edit_message(content=f"Restarting {self.server}", view=None)
        self.stop()

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmView]) -> None:
        self.seen.clicks.append((interaction.user.id, "Cancel"))
        await interaction.response.defer()  # type 6: acknowledge, then edit @original (the clicked message)
        await interaction.edit_original_response(content="Cancelled", view=None)
        self.stop()


def make_bot(double: DiscordDouble, seen: Seen, *, guild_sync: bool = True) -> commands.Bot:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    group = app_commands.Group(name="poracle", description="Manage PoracleJS servers")

    @group.command(name="restart", description="Restart a server")
    async def restart(interaction: discord.Interaction, server: str) -> None:
        seen.commands.append((interaction.user.id, f"restart {server}"))
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.edit_original_response(content=f"Restart {server}?", view=ConfirmView(seen, server))

    @restart.autocomplete("server")
    async def servers(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=s, value=s) for s in SERVERS if s.lower().startswith(current.lower())]

    @group.command(name="status", description="Show status")
    async def status(interaction: discord.Interaction) -> None:
        seen.commands.append((interaction.user.id, "status"))
        await interaction.response.send_message(
            f"All good, {interaction.user.mention}", allowed_mentions=discord.AllowedMentions.none()
        )

    @group.command(name="report", description="Deferred, then two follow-ups")
    async def report(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.followup.send("part 1")
        await interaction.followup.send("part 2", ephemeral=True)

    @group.command(name="whois", description="A user option, resolved")
    async def whois(interaction: discord.Interaction, user: discord.Member, role: discord.Role) -> None:
        await interaction.response.send_message(f"{user.name} {role.name} {role in user.roles}", ephemeral=True)

    bot.tree.add_command(group)

    async def setup_hook() -> None:
        if guild_sync:
            bot.tree.copy_global_to(guild=discord.Object(double.guild_id))
            await bot.tree.sync(guild=discord.Object(double.guild_id))
        else:
            await bot.tree.sync()

    async def on_resumed() -> None:
        seen.resumed += 1

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    bot.add_listener(on_resumed)
    return bot


async def restart_and_confirm(double: DiscordDouble, user_index: int = 0) -> Message:
    admin = double.admins[user_index]
    rec = await double.slash(admin, "poracle", "restart", server="Main")
    prompt = await rec.wait_original(lambda m: not m.loading)
    click = await double.click(admin, prompt, "Confirm")
    assert click.response_type == 7
    return double.message(prompt.id)


# --------------------------------------------------------------------------- connecting


async def test_login_sees_guild_roles_members_and_syncs(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    bot = make_bot(d, seen)
    async with d.connected(bot):
        guild = bot.get_guild(d.guild_id)
        assert guild is not None
        assert {r.name for r in guild.roles} == {"@everyone", "Poracle Admin"}
        assert guild.get_channel(d.channel_id) is not None
        assert guild.member_count == len(d.state.guild.members) == 4  # the bot, alice, bob, carol
        assert bot.user is not None and bot.user.id == d.bot_user.id
        assert bot.application_id == d.application_id
        synced = d.commands(d.guild_id)
        assert [c["name"] for c in synced] == ["poracle"]
        assert {o["name"] for o in synced[0]["options"]} == {"restart", "status", "report", "whois"}
        assert d.commands() == []
        assert d.requests_to("GET", "/users/@me") and d.requests_to("PUT", "/applications/*/guilds/*/commands")
        assert d.gateway.identifies == 1
        assert d.gateway.identify_payloads[0]["intents"] == discord.Intents.default().value
        assert not d.rest.unhandled


async def test_member_count_and_fixed_ids(discord_double: DiscordDouble) -> None:
    d = discord_double
    assert len({d.guild_id, d.channel_id, d.admin_role_id, d.application_id, *[u.id for u in d.admins]}) == 6
    assert d.admin_role_id in d.admins[0].role_ids and d.admin_role_id in d.admins[1].role_ids
    assert d.admin_role_id not in d.member.role_ids
    assert DiscordDouble().guild_id == d.guild_id  # stable across instances/runs


async def test_rest_answers_exact_json_content_type(discord_double: DiscordDouble) -> None:
    d = discord_double
    headers = {"Authorization": f"Bot {d.token}"}
    async with aiohttp.ClientSession() as session, session.get(f"{d.api_base}/users/@me", headers=headers) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"
        assert (await r.json())["id"] == str(d.bot_user.id)


async def test_wrong_token_is_a_login_failure(discord_double: DiscordDouble) -> None:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    with pytest.raises(discord.LoginFailure):
        await bot.login("not-the-token")
    await bot.close()


# --------------------------------------------------------------------------- interactions


async def test_connect_command_click_cycle(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    started = time.perf_counter()
    async with d.connected(make_bot(d, seen)):
        final = await restart_and_confirm(d)
        elapsed = time.perf_counter() - started
    print(f"\nconnect-command-click cycle: {elapsed * 1000:.1f} ms")
    assert seen.commands == [(d.admins[0].id, "restart Main")]
    assert seen.clicks == [(d.admins[0].id, "Confirm")]
    assert final.content == "Restarting Main" and final.components == []
    assert final.ephemeral
    # deferred (loading) -> prompt with buttons -> edited by the click, in that order
    assert [v.content for v in final.versions] == ["", "Restart Main?", "Restarting Main"]
    assert final.versions[0].flags & 128 and final.versions[1].components


async def test_slash_defer_then_edit_original(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)):
        rec = await d.slash(d.admins[1], "poracle", "restart", server="Backup")
        assert rec.response_type == 5
        msg = await rec.wait_original(lambda m: not m.loading)
        assert msg.content == "Restart Backup?"
        assert [b["label"] for b in msg.buttons] == ["Confirm", "Cancel"]
        assert msg.interaction_metadata is not None
        assert msg.interaction_metadata["user"]["id"] == str(d.admins[1].id)
        patch = d.requests_to("PATCH", "/webhooks/*/messages/@original")
        assert len(patch) == 1 and patch[0].json["content"] == "Restart Backup?"


async def test_click_with_deferred_update_edits_clicked_message(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)):
        rec = await d.slash(d.admins[0], "poracle", "restart", server="Main")
        prompt = await rec.wait_original(lambda m: not m.loading)
        click = await d.click(d.member, prompt, "Cancel")  # the double lets anyone click; the bot decides
        assert click.response_type == 6
        await d.wait_for_message(lambda m: m.id == prompt.id and m.content == "Cancelled")
        assert seen.clicks == [(d.member.id, "Cancel")]
        assert click.original is not None and click.original.id == prompt.id


async def test_send_message_records_allowed_mentions(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)):
        rec = await d.slash(d.member, "poracle", "status")
        msg = rec.original
        assert msg is not None and rec.response_type == 4 and not msg.ephemeral
        assert msg.content == f"All good, <@{d.member.id}>"
        assert msg.allowed_mentions == {"parse": []}
        assert msg.pinged_user_ids == set()


async def test_followups_fill_the_deferred_message_then_post(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)):
        rec = await d.slash(d.admins[0], "poracle", "report")
        second = await rec.wait_followup()
        original = rec.original
        assert original is not None and original.content == "part 1" and not original.loading
        assert second.content == "part 2" and second.ephemeral


async def test_autocomplete_returns_choices(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)):
        choices = await d.autocomplete(d.member, "poracle", "restart", "server", "Ma")
        assert choices == [{"name": "Main", "value": "Main"}]
        assert await d.autocomplete(d.member, "poracle", "restart", "server", "") == [
            {"name": s, "value": s} for s in SERVERS
        ]


async def test_unsynced_command_and_bad_options_are_refused(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)):
        with pytest.raises(LookupError, match="not synced"):
            await d.slash(d.member, "nope")
        with pytest.raises(LookupError, match="unknown options"):
            await d.slash(d.member, "poracle", "restart", sever="Main")
        with pytest.raises(ValueError, match="required"):
            await d.slash(d.member, "poracle", "restart")


async def test_global_sync_works_too(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen, guild_sync=False)):
        assert [c["name"] for c in d.commands()] == ["poracle"]
        rec = await d.slash(d.admins[0], "poracle", "status")
        assert rec.response_type == 4


# --------------------------------------------------------------------------- misbehaviour


@pytest.mark.parametrize("code", [4000, None], ids=["close-4000", "abort"])
async def test_dropped_gateway_is_resumed(discord_double: DiscordDouble, code: int | None) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)):
        await d.drop_gateway(code)
        await d.wait_until_ready()
        assert d.gateway.resumes == 1 and d.gateway.identifies == 1
        await restart_and_confirm(d)
        assert seen.clicks


async def test_reconnect_request_is_resumed(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)):
        await d.request_reconnect()
        await d.wait_until_ready()
        assert d.gateway.resumes == 1
        assert (await d.slash(d.member, "poracle", "status")).response_type == 4


async def test_interaction_sent_while_disconnected_is_replayed_on_resume(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)):
        await d.drop_gateway()
        rec = await d.slash(d.admins[0], "poracle", "status")  # waits for the response across the resume
        assert rec.response_type == 4 and d.gateway.resumes == 1


async def test_invalidated_session_makes_the_bot_identify_again(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    bot = make_bot(d, seen)

    async def no_identify_delay(shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py sleeps 5 s before every IDENTIFY but the first

    bot.before_identify_hook = no_identify_delay  # type: ignore[method-assign]
    async with d.connected(bot):
        await d.drop_gateway(invalidate=True)
        await d.wait_until_ready()
        assert d.gateway.identifies == 2
        await restart_and_confirm(d)


async def test_429_on_message_post_is_retried_and_lands(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    fault = d.fail_next("POST", "/channels/*/messages", 429, retry_after=0.05)
    async with d.connected(make_bot(d, seen)) as bot:
        channel = bot.get_channel(d.channel_id)
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("Main is down")
        msg = await d.wait_for_message(lambda m: m.content == "Main is down")
        assert msg.id == sent.id and msg.channel_id == d.channel_id
        assert fault.hits == 1
        assert [r.status for r in d.requests_to("POST", "/channels/*/messages")] == [429, 200]


async def test_500_is_retried_by_discord_py(discord_double: DiscordDouble) -> None:
    # discord.py sleeps 1 s before retrying a 500; this test costs that second.
    d, seen = discord_double, Seen()
    d.fail_next("POST", f"/channels/{d.channel_id}/messages", 500)
    async with d.connected(make_bot(d, seen)) as bot:
        await bot.get_partial_messageable(d.channel_id).send("after a 500")
        assert [r.status for r in d.requests_to("POST", "/channels/*/messages")] == [500, 200]


async def test_503_surfaces_as_server_error(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    d.fail_next("POST", "/channels/*/messages", 503)
    async with d.connected(make_bot(d, seen)) as bot:
        with pytest.raises(discord.DiscordServerError):
            await bot.get_partial_messageable(d.channel_id).send("x")


async def test_forbidden_and_missing_channels(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)) as bot:
        extra = await d.add_channel("ops")
        await d.wait_until_ready()  # the bot has processed CHANNEL_CREATE
        assert bot.get_channel(extra.id) is not None
        d.forbid_channel(d.channel_id)
        with pytest.raises(discord.Forbidden) as forbidden:
            await bot.get_partial_messageable(d.channel_id).send("alert")
        assert forbidden.value.code == 50013
        await d.remove_channel(extra.id)
        with pytest.raises(discord.NotFound) as missing:
            await bot.get_partial_messageable(extra.id).send("alert")
        assert missing.value.code == 10003
        assert d.channel_messages() == []


async def test_message_edit_get_delete(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)) as bot:
        channel = bot.get_partial_messageable(d.channel_id)
        sent = await channel.send("v1", embed=discord.Embed(title="Status", description="ok"))
        await sent.edit(content="v2")
        fetched = await channel.fetch_message(sent.id)
        assert fetched.content == "v2" and fetched.embeds[0].title == "Status"
        stored = d.message(sent.id)
        assert [v.content for v in stored.versions] == ["v1", "v2"] and "Status" in stored.text
        await fetched.delete()
        assert d.channel_messages() == []
        with pytest.raises(discord.NotFound):
            await channel.fetch_message(sent.id)


async def test_a_message_deleted_by_someone_else_is_gone_for_the_bot(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    deleted: list[int] = []

    async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
        deleted.append(payload.message_id)

    async with d.connected(make_bot(d, seen)) as bot:
        bot.add_listener(on_raw_message_delete)
        channel = bot.get_partial_messageable(d.channel_id)
        sent = await channel.send("status")
        await d.delete_message(sent.id)
        await d.wait_until_ready()  # the bot has processed MESSAGE_DELETE
        assert deleted == [sent.id] and d.channel_messages() == [] and d.message(sent.id).deleted
        with pytest.raises(discord.NotFound) as missing:
            await sent.edit(content="v2")
        assert missing.value.code == 10008
        with pytest.raises(LookupError):
            await d.delete_message(sent.id)


async def test_user_and_role_options_are_resolved(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)):
        rec = await d.slash(d.member, "poracle", "whois", user=d.admins[1], role=d.admin_role_id)
        assert rec.original is not None and rec.original.content == "bob Poracle Admin True"


async def test_late_callback_gets_unknown_interaction(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    d.interaction_deadline = 0.0  # every callback is "too late"
    async with d.connected(make_bot(d, seen)):
        rec = await d.slash(d.admins[0], "poracle", "status", wait=False)
        request = await d.wait_for_request("POST", f"/interactions/{rec.id}/*/callback")
        await d.state.wait_until(lambda: request.status or None, 2.0, "the callback's answer")
        assert request.status == 404 and not rec.responded


async def test_gateway_rejects_a_wrong_token_with_4004(discord_double: DiscordDouble) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(discord_double.gateway_url) as ws:
        hello = await ws.receive_json()
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0, "properties": {}}})
        closing = await ws.receive()
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4004


async def test_files_are_kept_byte_for_byte_when_sent_and_when_an_edit_adds_them(discord_double: DiscordDouble) -> None:
    d, seen = discord_double, Seen()
    async with d.connected(make_bot(d, seen)) as bot:
        channel = bot.get_partial_messageable(d.channel_id)
        sent = await channel.send("a log", file=discord.File(io.BytesIO(b"line 1\n"), filename="a.txt"))
        assert sent.attachments[0].filename == "a.txt" and sent.attachments[0].size == 7
        assert d.files(d.message(sent.id)) == {"a.txt": b"line 1\n"}
        await sent.edit(attachments=[*sent.attachments, discord.File(io.BytesIO(b"more"), filename="b.txt")])
        assert d.files(d.message(sent.id)) == {"a.txt": b"line 1\n", "b.txt": b"more"}
        await sent.edit(content="no log", attachments=[])
        assert d.files(d.message(sent.id)) == {}
