"""`poracle-bot trust`: pin servers' SSH host keys after a person has seen their fingerprints.

This is how the `strict` policy is meant to be used: pin every server once with `trust`, then set
PORACLE_SSH_HOST_KEY_POLICY=strict so the bot never trusts a key on its own. A key that has CHANGED is
replaced only when asked for by name (`--replace`): `--yes` alone, meant for pinning new servers in a
script, must never swap a pinned key for a man in the middle's.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

import asyncssh

from bot.config import ServerConfig, Settings
from bot.core.hostkeys import fingerprint, host_pattern
from bot.core.ssh import ConnectionProblem, SshRunner


class PinState(StrEnum):
    PINNED = "pinned"  # the key offered is a pinned one
    NEW = "not pinned"  # nothing is pinned for this host yet
    CHANGED = "changed"  # another key is pinned: a reinstalled server, or a man in the middle


@dataclass(frozen=True, slots=True)
class HostKeyCheck:
    """The key a server offers now, against what known_hosts pins for it."""

    server: ServerConfig
    offered: asyncssh.SSHKey
    pinned: tuple[asyncssh.SSHKey, ...]

    @property
    def state(self) -> PinState:
        if any(key.public_data == self.offered.public_data for key in self.pinned):
            return PinState.PINNED
        return PinState.CHANGED if self.pinned else PinState.NEW

    @property
    def where(self) -> str:
        return host_pattern(self.server.host, self.server.ssh_port)

    @property
    def offered_text(self) -> str:
        return describe_key(self.offered)

    @property
    def pinned_text(self) -> str:
        return ", ".join(describe_key(key) for key in self.pinned)


def describe_key(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {fingerprint(key)}"


async def check_host_key(runner: SshRunner, server: ServerConfig) -> HostKeyCheck:
    """Fetch the server's host key (no login) and compare it; ConnectionProblem when it cannot be fetched,
    or when known_hosts cannot be read."""
    try:
        runner.known_hosts.keys_for(server.host, server.ssh_port)
    except (OSError, ValueError) as exc:  # asyncssh refuses a file with a malformed line
        raise ConnectionProblem(f"cannot use known_hosts file {runner.known_hosts.path}: {exc}") from None
    offered = await runner.host_key(server)
    return HostKeyCheck(server, offered, tuple(runner.known_hosts.keys_for(server.host, server.ssh_port)))


def _where_to_compare(key: asyncssh.SSHKey) -> str:
    # ssh-ed25519 -> ed25519, ecdsa-sha2-nistp256 -> ecdsa, ssh-rsa -> rsa: the server's host key file names.
    kind = key.get_algorithm().removeprefix("ssh-").split("-")[0]
    return f"ssh-keygen -lf /etc/ssh/ssh_host_{kind}_key.pub"


async def trust_servers(
    settings: Settings,
    servers: Iterable[ServerConfig],
    *,
    assume_yes: bool,
    confirm: Callable[[str], bool],
    replace: bool = False,
) -> int:
    """Pin each server's key once confirmed, replacing a changed one only with `replace`; exit status 0 only
    when every server ends up pinned."""
    runner = SshRunner(settings)
    # One prompt at a time.
    results = [await _trust(runner, server, assume_yes, replace, confirm) for server in servers]
    return 0 if all(results) else 1


async def _trust(
    runner: SshRunner, server: ServerConfig, assume_yes: bool, replace: bool, confirm: Callable[[str], bool]
) -> bool:
    try:
        check = await check_host_key(runner, server)
    except ConnectionProblem as exc:
        print(f"{server.name}: cannot fetch the host key of {server.ssh_target}: {exc}")
        return False
    path = runner.known_hosts.path
    if check.state is PinState.PINNED:
        print(f"{server.name}: the host key of {check.where} is already pinned ({check.offered_text})")
        return True
    if check.state is PinState.CHANGED:
        print(
            f"\n!!! WARNING: the host key of {server.name} ({check.where}) has CHANGED !!!\n"
            f"    pinned in {path}: {check.pinned_text}\n"
            f"    offered now: {check.offered_text}\n"
            "    Expected only if the server was reinstalled or its host keys were regenerated.\n"
            "    Otherwise someone may be intercepting the connection: do not replace the key.\n"
            f"    Check on the server: {_where_to_compare(check.offered)}"
        )
        if not replace:
            again = f"poracle-bot trust {shlex.quote(server.name)} --replace"
            print(f"{server.name}: nothing changed; once you know why the key changed, replace it with `{again}`")
            return False
        question = f"Replace the pinned key of {server.name} with {fingerprint(check.offered)}?"
    else:
        print(
            f"{server.name}: {check.where} offers {check.offered_text}\n"
            f"  check it on the server: {_where_to_compare(check.offered)}"
        )
        question = f"Pin this key for {server.name} in {path}?"
    if not assume_yes and not confirm(question):
        print(f"{server.name}: nothing pinned")
        return False
    if check.state is PinState.CHANGED:
        runner.known_hosts.unpin(server.host, server.ssh_port)
    runner.known_hosts.pin(server.host, server.ssh_port, check.offered)
    print(f"{server.name}: pinned {check.offered_text} for {check.where} in {path}")
    return True
