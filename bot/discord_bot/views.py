"""Buttons: the Confirm/Cancel prompt before a restart, and the Restart button on outage alerts."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

import discord

from bot.config import ServerConfig, Settings
from bot.core.service import INTERRUPTED, STOPPED_REASON, refusal_reason
from bot.discord_bot import outgoing
from bot.discord_bot.access import REFUSAL, is_admin, requester, who
from bot.discord_bot.embeds import BLURPLE, GREY, restart_announcement, restart_prompt_embed, restart_result_embed
from bot.discord_bot.embeds import restart_state_embed as state_embed
from bot.discord_bot.limits import BUTTON_LABEL, cut

BUTTONS = 25  # Discord: five rows of five

if TYPE_CHECKING:
    from bot.discord_bot.client import PoracleBot

log = logging.getLogger(__name__)

STOPPING = "The bot is stopping; ask again once it is back."


class OwnedView(discord.ui.View):
    """Buttons only the admin who asked may press; checked on every press, as roles can change meanwhile."""

    action = "answer this prompt"  # how a refused press is told what it may not do

    def __init__(self, owner: discord.abc.User, admin_role_ids: frozenset[int], timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner = owner
        self.admin_role_ids = admin_role_ids

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if not is_admin(interaction, self.admin_role_ids):
            await outgoing.reply_privately(interaction, REFUSAL)
            return False
        if interaction.user.id != self.owner.id:
            await outgoing.reply_privately(interaction, f"Only {self.owner.mention} can {self.action}.")
            return False
        return True

    def disable(self) -> Self:
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        return self


class ConfirmView(OwnedView):
    """Records the asking admin's choice: True (Confirm), False (Cancel) or None (expired)."""

    def __init__(self, owner: discord.abc.User, admin_role_ids: frozenset[int], timeout: float) -> None:
        super().__init__(owner, admin_role_ids, timeout)
        self.value: bool | None = None

    async def _choose(self, interaction: discord.Interaction, value: bool) -> None:
        if self.value is not None:  # a second press that raced the first: already decided
            await interaction.response.defer()
            return
        self.value = value
        self.stop()
        # Disable the buttons in the click's own answer, so nobody can press twice.
        await outgoing.update_clicked(interaction, view=self.disable())

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmView]) -> None:
        await self._choose(interaction, True)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmView]) -> None:
        await self._choose(interaction, False)


async def confirm_restart(
    interaction: discord.Interaction[PoracleBot], servers: Sequence[ServerConfig], process: str | None = None
) -> None:
    """Ask the admin to confirm, then restart (only the pm2 `process`, when given) and show the result. Both
    entry points use this flow; a stopping bot waits for it (and ends its prompt)."""
    bot = interaction.client
    service = bot.service
    if service.stopping:
        await outgoing.reply_privately(interaction, STOPPING)
        return
    running = service.running_restart(servers[0]) if len(servers) == 1 else None
    if running is not None:  # in this bot or another process: the command line, a second bot
        reason = refusal_reason(servers[0].name, running)
        await outgoing.reply_privately(
            interaction, f"**{servers[0].name}** is already restarting ({reason}); wait for that to finish."
        )
        return
    view = ConfirmView(interaction.user, bot.settings.discord_admin_role_ids, bot.confirm_timeout)
    with bot.front.restart_flow(view):
        await _ask_and_restart(interaction, servers, process, view)


async def _ask_and_restart(
    interaction: discord.Interaction[PoracleBot],
    servers: Sequence[ServerConfig],
    process: str | None,
    view: ConfirmView,
) -> None:
    bot = interaction.client
    service = bot.service
    prompt = restart_prompt_embed(servers, bot.confirm_timeout, process)
    sent = await outgoing.respond(interaction, embeds=[prompt], view=view)
    await view.wait()
    names = ", ".join(server.name for server in servers)
    names = names if process is None else f"pm2 process {process} of {names}"
    if service.stopping:  # the prompt was ended by the bot's stop, or answered just before it
        log.info("Restart of %s by %s not started: the bot is stopping", names, who(interaction.user))
        stopping = state_embed(servers, "not restarted: the bot is stopping", GREY, process)
        await outgoing.edit_response(interaction, embeds=[stopping], view=None)
        return
    if view.value is None:
        log.info("Restart of %s by %s expired unanswered", names, who(interaction.user))
        expired = state_embed(servers, "expired", GREY, process)
        await outgoing.edit_response(interaction, embeds=[expired], view=view.disable())
        return
    if not view.value:
        log.info("Restart of %s cancelled by %s", names, who(interaction.user))
        await outgoing.edit_response(interaction, embeds=[state_embed(servers, "cancelled", GREY, process)], view=None)
        return
    restarting = state_embed(servers, "restarting...", BLURPLE, process)
    await outgoing.edit_response(interaction, embeds=[restarting], view=None)
    # Kept with the audit rows: a bot that crashes meanwhile edits this message at its next start.
    reply = f"{interaction.channel_id}/{sent.message_id}" if interaction.channel_id and sent.message_id else None
    results = await service.restart_many(servers, requester(interaction.user, reply), process=process)
    if all(result.word == INTERRUPTED for result in results):
        embed = state_embed(servers, f"{INTERRUPTED}: {STOPPED_REASON}", GREY, process)
    else:
        embed = restart_result_embed(results)
    await outgoing.edit_response(interaction, embeds=[embed])
    if reply is not None:
        await asyncio.to_thread(bot.store.shown, reply)
    await bot.alerts.post(content=restart_announcement(results, interaction.user))


class PagerView(OwnedView):
    """Previous / Next through pages of embeds, for the admin who asked."""

    action = "turn these pages"

    def __init__(
        self, pages: Sequence[discord.Embed], owner: discord.abc.User, admin_role_ids: frozenset[int], timeout: float
    ) -> None:
        super().__init__(owner, admin_role_ids, timeout)
        self.pages = pages
        self.page = 0
        self._enable()

    def _enable(self) -> None:
        self.previous_page.disabled = self.page == 0
        self.next_page.disabled = self.page == len(self.pages) - 1

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        # Clamped: a double press on the last page's Next, sent before the edit arrived, stays there.
        self.page = min(max(self.page + step, 0), len(self.pages) - 1)
        self._enable()
        await outgoing.update_clicked(interaction, embeds=[self.pages[self.page]], view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous_page(self, interaction: discord.Interaction, button: discord.ui.Button[PagerView]) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next_page(self, interaction: discord.Interaction, button: discord.ui.Button[PagerView]) -> None:
        await self._turn(interaction, 1)


async def show_pages(interaction: discord.Interaction[PoracleBot], pages: Sequence[discord.Embed]) -> None:
    """The first page, with Previous / Next when there are more; the buttons are disabled when they expire."""
    if len(pages) == 1:
        await outgoing.respond(interaction, embeds=[pages[0]])
        return
    bot = interaction.client
    view = PagerView(pages, interaction.user, bot.settings.discord_admin_role_ids, bot.pager_timeout)
    await outgoing.respond(interaction, embeds=[pages[0]], view=view)
    await view.wait()
    try:
        await outgoing.edit_response(interaction, view=view.disable())
    except discord.HTTPException as exc:  # deleted meanwhile: nothing left to disable
        log.info("Could not disable the expired pager: %s %s", exc.status, exc.text)


async def admins_only(interaction: discord.Interaction[PoracleBot]) -> bool:
    """A press (or a form sent): refused privately unless the member holds an admin role now."""
    if not is_admin(interaction, interaction.client.settings.discord_admin_role_ids):
        await outgoing.reply_privately(interaction, REFUSAL)
        return False
    return True


class ServerButton:
    """What the buttons under an alert share: admins only, checked on every press; the server they name
    (PORACLE_SERVER_<index>) looked up afresh; a failure logged and told to the one who pressed."""

    index: int
    action = "Restart"  # how the log names the button

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return await admins_only(interaction)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        server = next((s for s in interaction.client.settings.servers if s.index == self.index), None)
        if server is None:
            await outgoing.reply_privately(interaction, "That server is no longer configured.")
            return
        try:
            await self.pressed(interaction, server)
        except Exception:
            log.exception("%s button for %s failed", self.action, server.name)
            await outgoing.reply_privately(interaction, "Something went wrong; the error was logged.")

    async def pressed(self, interaction: discord.Interaction[PoracleBot], server: ServerConfig) -> None:
        raise NotImplementedError


class RestartButton(
    ServerButton,
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"poracle:restart:(?P<index>\d+)",
):
    """The Restart button under an outage alert. Dynamic, so it keeps working after the bot restarts."""

    def __init__(self, index: int, label: str | None = None, row: int | None = None) -> None:
        # The label only matters when the alert is sent; a click is resolved from the custom id alone.
        super().__init__(
            discord.ui.Button(
                label=cut(f"Restart {label}", BUTTON_LABEL) if label else "Restart",
                style=discord.ButtonStyle.danger,
                custom_id=f"poracle:restart:{index}",
            ),
            row=row,
        )
        self.index = index

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[discord.ui.View], match: re.Match[str]
    ) -> RestartButton:
        return cls(int(match["index"]))

    async def pressed(self, interaction: discord.Interaction[PoracleBot], server: ServerConfig) -> None:
        await confirm_restart(interaction, [server])


def restart_view(settings: Settings, names: Sequence[str]) -> discord.ui.View | None:
    """A Restart button per configured server of `names` (labelled with its name when there are several)."""
    servers = [server for name in names if (server := settings.server(name)) is not None]
    if not servers:
        return None
    view = discord.ui.View(timeout=None)
    for server in servers[:BUTTONS]:
        view.add_item(RestartButton(server.index, label=server.name if len(servers) > 1 else None))
    return view
