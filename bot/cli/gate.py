"""`poracle-bot gate`: what it takes to put poracle-gate in front of the bot's SSH key on each server.

It prints; it connects nowhere and changes nothing. `--program` prints the gate itself (the JavaScript
shipped in this package), to be piped over the operator's own SSH login into the server; without it, each
server's three steps with the authorized_keys line made from the bot's public key. The private key is
read only to derive that public key and is never printed.
"""

from __future__ import annotations

import re

from bot import gate
from bot.config import SERVER_PREFIX, Access, ConfigError, ServerConfig, Settings
from bot.core.gate_protocol import PROGRAM, VERBS
from bot.core.ssh import ConnectionProblem, read_client_key

GATE_PATH = f"~/bin/{PROGRAM}"  # the forced command runs through the user's shell, which expands ~
# Received beside the gate and moved over it only when something arrived: a pipe whose left side failed
# (`poracle-bot: command not found`) must not leave an empty gate that answers nothing.
_NEW = f"{GATE_PATH}.new"
INSTALL = f"mkdir -p ~/bin && cat > {_NEW} && test -s {_NEW} && chmod 755 {_NEW} && mv {_NEW} {GATE_PATH}"
# A path that cannot end the quoted command="..." of the key line nor mean anything to the shell.
_SAFE_PATH = re.compile(r"/[A-Za-z0-9_.@+/-]*")


def node_path(value: str) -> str:
    """The `--node` argument: an absolute path of plain characters."""
    if not _SAFE_PATH.fullmatch(value):
        raise ValueError(f"--node must be an absolute path of letters, digits and _ . @ + / -, not {value!r}")
    return value


def key_line(settings: Settings, server: ServerConfig, node: str | None) -> str:
    """The authorized_keys line that limits this server's key to the gate."""
    try:
        key = read_client_key(server.ssh_key_path)
    except ConnectionProblem as exc:
        own = server.ssh_key_path != settings.ssh_key_path
        variable = f"{SERVER_PREFIX}{server.index}_SSH_KEY_PATH" if own else "PORACLE_SSH_KEY_PATH"
        raise ConfigError([f"{variable}: {exc}"]) from None
    algorithm, blob, *comment = key.export_public_key().decode().split()
    command = f"{node} {GATE_PATH}" if node else GATE_PATH
    return f'restrict,pty,command="{command}" {algorithm} {blob} {" ".join(comment) or "poracle-bot"}'


def _steps(settings: Settings, server: ServerConfig, node: str | None) -> list[str]:
    port = f"-p {server.ssh_port} " if server.ssh_port != 22 else ""
    variable = f"{SERVER_PREFIX}{server.index}"
    if server.access is Access.GATE:
        set_access = f"{variable}_ACCESS=gate is set"
    else:
        set_access = f"set {variable}_ACCESS=gate (and remove {variable}_RESTART_CMD)"
    return [
        f"{server.name} ({server.ssh_user}@{server.host}, port {server.ssh_port})",
        "  1. Copy the gate there:",
        f"     poracle-bot gate --program | ssh {port}{server.ssh_user}@{server.host} '{INSTALL}'",
        "  2. In ~/.ssh/authorized_keys there, replace the line of the bot's key (the same key) with this one:",
        f"     {key_line(settings, server, node)}",
        f"  3. Here: {set_access}, then run `poracle-bot doctor`.",
    ]


def instructions(settings: Settings, node: str | None) -> str:
    """The steps for every configured server; ConfigError when a key cannot be read."""
    blocks = [_steps(settings, server, node) for server in settings.servers]
    return "\n".join(
        [
            f"{PROGRAM} {gate.version()} limits the bot's SSH key to what the bot needs: {', '.join(VERBS)}.",
            "Install it on each server as the SSH user the bot logs in as; step 1 copies it with your own SSH login.",
            "",
            *(line for block in blocks for line in [*block, ""]),
            "From a checkout, write `./poracle-bot` for `poracle-bot`; in Docker, `docker compose run --rm -T",
            "poracle-bot` (-T: no terminal, so the program is copied byte for byte).",
            "If node is not on the PATH of SSH commands there (nvm), `poracle-bot gate --node=/full/path/to/node`",
            "prints key lines that name it. How the gate works and its options: bot/gate/README.md.",
        ]
    )
