"""`poracle-bot doctor`: checks everything an operator can get wrong and says how to fix each.

It changes nothing. With ACCESS=command the SSH check logs in and out without opening a session, so nothing
runs on a server, not even the restart command a `command=` restriction in authorized_keys would force. With
ACCESS=gate it asks the gate `hello` (which only reads) for its version and the verbs it allows. No host key
is pinned: an unknown key is trusted for doctor's own checks only, and `poracle-bot trust` is what pins.
Whether the bot can write is found out by writing (a scratch file, removed at once; existing files opened for
appending without a byte written): permission bits, ACLs, read-only mounts, squashed NFS and full disks show.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bot import gate
from bot.cli.trust import HostKeyCheck, PinState, check_host_key
from bot.config import (
    SERVER_PREFIX,
    Access,
    ConfigError,
    HostKeyPolicy,
    ServerConfig,
    Settings,
    access_warnings,
    load_settings,
)
from bot.core import open_files, store
from bot.core.gate_protocol import NO_OUTPUT, PROTOCOL, GateHello, hello_command, parse_hello
from bot.core.health import HealthChecker, HealthResult, fix
from bot.core.hostkeys import KnownHosts, fingerprint
from bot.core.push import HeartbeatPush
from bot.core.ssh import CommandOutcome, ConnectionProblem, GateResult, SshRunner, read_client_key
from bot.core.stuck import StuckTracker

KEY_FIX = "mount a dedicated private key without a passphrase at /app/ssh_key (Docker), or set PORACLE_SSH_KEY_PATH"
SSH_REACH_FIX = "check the host and SSH port, that sshd runs there, and that the firewall lets this machine in"
WRITABLE_FIX = "make it, and the files in it, writable by the user running the bot (in Docker: the /app/data volume)"
# The database and SQLite's companions in WAL mode: each must be writable once it exists.
DATABASE_FILES = (store.FILE_NAME, f"{store.FILE_NAME}-wal", f"{store.FILE_NAME}-shm")
SQLITE_HEADER = b"SQLite format 3\x00"
API_FIX = (
    "is PoracleJS running, listening on 0.0.0.0 (server.host in its config, not 127.0.0.1), "
    "and does the firewall let this machine reach that port?"
)
GATE_INSTALL_FIX = "`poracle-bot gate` prints the three steps that install it"
EMPTY_GATE_FIX = (
    "it ran and printed nothing, not even an error: ~/bin/poracle-gate there may be empty (a copy whose left side "
    "failed); step 1 of `poracle-bot gate` copies it again"
)
NODE_FIX = (
    "node is not on the PATH of SSH commands there: `poracle-bot gate --node=/full/path/to/node` prints a key "
    "line that names it"
)
HEARTBEAT_FIX = (
    "check PORACLE_HEARTBEAT_URL (the ping URL of a healthchecks.io check, or an Uptime Kuma push monitor's URL) "
    "and that this machine may reach it"
)
_NODE_MISSING = re.compile(r"\bnode\b.*(not found|No such file)")


class Level(StrEnum):
    OK = " OK "
    NOTE = "NOTE"  # a better set-up exists; nothing is wrong
    WARN = "WARN"  # worth knowing; does not make doctor fail
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    subject: str
    text: str
    fix: str = ""

    def line(self) -> str:
        return f"[{self.level}] {self.subject}: {self.text}" + (f" — {self.fix}" if self.fix else "")


async def run_doctor(env: Mapping[str, str], hint: str | None = None) -> int:
    """Print the checklist; 0 only when nothing failed (warnings allowed). `hint`: why the configuration may
    be missing altogether, shown when it is wrong."""
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        from bot.cli.main import EXIT_CONFIG

        print("\n".join(Finding(Level.FAIL, "Configuration", problem).line() for problem in exc.problems))
        if hint:
            print(Finding(Level.NOTE, "Configuration", hint).line())
        print(f"{len(exc.problems)} configuration problem(s): fix them first, nothing else was checked.")
        return EXIT_CONFIG
    findings = await diagnose(settings)
    print("\n".join(finding.line() for finding in findings))
    failed = sum(finding.level is Level.FAIL for finding in findings)
    print(f"{failed} problem(s) found." if failed else "All good.")
    return 1 if failed else 0


async def diagnose(settings: Settings) -> list[Finding]:
    """Every finding, in checklist order: configuration, Discord, keys, data, known_hosts, then each server."""
    names = ", ".join(server.name for server in settings.servers)
    findings = [Finding(Level.OK, "Configuration", f"{len(settings.servers)} server(s): {names}")]
    findings += [Finding(Level.WARN, "Configuration", warning) for warning in access_warnings(settings)]
    findings += _discord(settings)
    key_findings = {path: _key(path) for path in dict.fromkeys(server.ssh_key_path for server in settings.servers)}
    findings += key_findings.values()
    host_keys, hosts_readable = _known_hosts(settings)
    findings += [_data_dir(settings), host_keys, _open_files(settings)]
    runner = SshRunner(settings)
    async with HealthChecker(settings.health_timeout) as checker:
        heartbeat, *per_server = await asyncio.gather(
            _heartbeat(settings),
            *(
                _server(settings, checker, runner, s, key_findings[s.ssh_key_path], hosts_readable)
                for s in settings.servers
            ),
        )
    return findings + heartbeat + [finding for server_findings in per_server for finding in server_findings]


async def _heartbeat(settings: Settings) -> list[Finding]:
    """PORACLE_HEARTBEAT_URL requested once, as the bot does after each round (the service counts it as a
    heartbeat), and shown masked: it carries a secret."""
    if settings.heartbeat_url is None:
        return []
    push = HeartbeatPush(settings.heartbeat_url, settings.health_timeout)
    started = time.perf_counter()
    try:
        problem = await push.push()
    finally:
        await push.close()
    if problem is not None:
        return [Finding(Level.FAIL, "Heartbeat", f"{push.shown} failed: {problem}", HEARTBEAT_FIX)]
    took = (time.perf_counter() - started) * 1000
    return [
        Finding(Level.OK, "Heartbeat", f"{push.shown} answers ({took:.0f} ms); the bot requests it after every round")
    ]


def _discord(settings: Settings) -> list[Finding]:
    try:
        settings.require_discord()
    except ConfigError as exc:  # only `run` needs these: checking servers from a shell works without them
        return [Finding(Level.WARN, "Discord", problem) for problem in exc.problems]
    findings = [Finding(Level.OK, "Discord", f"token and {len(settings.discord_admin_role_ids)} admin role(s) set")]
    if settings.discord_alert_channel_id is None:
        findings.append(
            Finding(Level.WARN, "Discord", "DISCORD_ALERT_CHANNEL_ID is not set: outages are logged, not posted")
        )
    return findings


def _key(path: Path) -> Finding:
    try:
        key = read_client_key(path)
    except ConnectionProblem as exc:
        return Finding(Level.FAIL, "SSH key", str(exc), KEY_FIX)
    return Finding(Level.OK, "SSH key", f"{path}: {key.get_algorithm()} {fingerprint(key)}, no passphrase")


def _write_problem(path: Path) -> str | None:
    """Why the bot could not write `path`, or None. An existing file is opened for appending (nothing is
    written); in a directory, or the nearest existing one above a missing path (the bot creates the rest),
    a scratch file is written, synced and removed."""
    try:
        if path.is_file():
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
            return None
        directory = path
        while not directory.exists():
            directory = directory.parent
        if not directory.is_dir():
            return f"{directory} is not a directory"
        descriptor, scratch = tempfile.mkstemp(prefix=".poracle-doctor-", dir=directory)
        try:
            os.write(descriptor, b"\n")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
            os.unlink(scratch)
    except OSError as exc:
        return f"{exc.filename or path}: {exc.strerror or exc}"
    return None


def _data_dir(settings: Settings) -> Finding:
    directory = settings.data_dir
    files = [directory / name for name in DATABASE_FILES if (directory / name).exists()]
    problem = next(filter(None, map(_write_problem, [directory, *files])), None)
    if problem is not None:
        return Finding(
            Level.FAIL,
            "Data",
            f"{directory} cannot be written ({problem}): the bot could not keep its state and heartbeat",
            WRITABLE_FIX,
        )
    database = directory / store.FILE_NAME
    if database.is_file() and database.stat().st_size and not _is_sqlite(database):
        return Finding(
            Level.FAIL, "Data", f"{database} is not a SQLite database", "move it away: the bot starts a new one"
        )
    shown = str(directory) if directory.is_absolute() else f"{directory} (from here: {directory.resolve()})"
    if not directory.exists():
        return Finding(Level.OK, "Data", f"{shown} does not exist yet; the bot can create it")
    return Finding(Level.OK, "Data", f"{shown} is writable")


def _open_files(settings: Settings) -> Finding:
    """What the bot would find at start-up; raised as the bot raises it, for doctor's own checks of every server."""
    limit = open_files.ensure(len(settings.servers))
    problem = limit.problem()
    if problem is None:
        return Finding(Level.OK, "Open files", limit.describe())
    return Finding(Level.FAIL, "Open files", problem, limit.fix())


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def _known_hosts(settings: Settings) -> tuple[Finding, bool]:
    """The finding, and whether the file can be read at all (if not, the servers' host keys cannot be checked)."""
    path = settings.ssh_known_hosts
    policy = settings.ssh_host_key_policy
    if policy is HostKeyPolicy.OFF:
        finding = Finding(
            Level.WARN,
            "Host keys",
            "PORACLE_SSH_HOST_KEY_POLICY=off: the bot logs in to whatever answers at a server's address",
            "use accept-new (the default) or strict",
        )
        return finding, True
    try:
        malformed = KnownHosts(path).malformed_lines()
    except (OSError, UnicodeDecodeError) as exc:
        return Finding(Level.FAIL, "Host keys", f"cannot read {path}: {exc}", "fix or remove it"), False
    if malformed:
        (first, why), *more = malformed
        also = f"; also line(s) {', '.join(str(number) for number, _ in more)}" if more else ""
        text = f"{path} line {first}: {why}{also}"
        return Finding(Level.FAIL, "Host keys", text, "fix or remove the broken line(s)"), False
    problem = _write_problem(path) if policy is HostKeyPolicy.ACCEPT_NEW else None
    if problem is not None:
        text = f"{path} cannot be written ({problem}): a new server's host key could not be pinned"
        return Finding(Level.FAIL, "Host keys", text, WRITABLE_FIX), True
    return Finding(Level.OK, "Host keys", f"{path} is usable (policy {policy})"), True


async def _server(
    settings: Settings,
    checker: HealthChecker,
    runner: SshRunner,
    server: ServerConfig,
    key: Finding,
    hosts_readable: bool,
) -> list[Finding]:
    if not hosts_readable:  # reported once, at the file: its host key cannot be compared, so no login either
        return [_api(server, await checker.check(server))]
    api, ssh = await asyncio.gather(checker.check(server), _ssh(settings, runner, server, key))
    (judged,) = StuckTracker.configured(settings).judge([api], remember=False)  # its queue; a silence takes time
    return [_api(server, judged), *ssh]


def _api(server: ServerConfig, result: HealthResult) -> Finding:
    if result.online:
        answers = f"API answers (HTTP {result.status}, {result.latency_ms:.0f} ms"
        if result.cause is not None:
            return Finding(Level.WARN, server.name, f"{answers}) but {result.reason}", fix(result.cause, server.index))
        return Finding(Level.OK, server.name, answers + (f"; {result.detail})" if result.detail else ")"))
    return Finding(Level.FAIL, server.name, f"API does not answer at {server.health_url}: {result.reason}", API_FIX)


async def _ssh(settings: Settings, runner: SshRunner, server: ServerConfig, key: Finding) -> list[Finding]:
    try:
        check = await check_host_key(runner, server)
    except ConnectionProblem as exc:
        return [Finding(Level.FAIL, server.name, f"cannot reach SSH at {server.ssh_target}: {exc}", SSH_REACH_FIX)]
    policy = settings.ssh_host_key_policy
    findings = [_host_key(policy, check)]
    # Log in only where the bot would: a changed key may be a man in the middle, and under strict a key nobody
    # pinned is refused too. A broken key file was reported already.
    refused = check.state is PinState.CHANGED or (check.state is PinState.NEW and policy is HostKeyPolicy.STRICT)
    if key.level is Level.FAIL or (refused and policy is not HostKeyPolicy.OFF):
        return findings
    with tempfile.TemporaryDirectory(prefix="poracle-doctor-") as scratch:
        # A known_hosts of doctor's own trusting exactly the key just checked: the real file stays untouched.
        own = KnownHosts(Path(scratch) / "known_hosts")
        own.pin(server.host, server.ssh_port, check.offered)
        login = SshRunner(
            settings.model_copy(update={"ssh_known_hosts": own.path, "ssh_host_key_policy": HostKeyPolicy.STRICT})
        )
        if server.access is Access.GATE:
            # With the pty a restart asks for: a key line without `pty` fails here, not at the first restart.
            hello = await login.gate(server, hello_command(), parse_hello, settings.ssh_timeout)
            return findings + _gate(server, hello)
        result = await login.login(server)
    findings.append(_login(server, result.succeeded, result.reason, result.duration_s))
    findings.append(
        Finding(
            Level.NOTE,
            server.name,
            f"{SERVER_PREFIX}{server.index}_ACCESS=command: the bot's key may run any command as {server.ssh_user}",
            f"limit it to poracle-gate: {GATE_INSTALL_FIX}",
        )
    )
    return findings


def _login(server: ServerConfig, succeeded: bool, reason: str, duration_s: float) -> Finding:
    who = f"{server.ssh_user}@{server.host}"
    if succeeded:
        return Finding(Level.OK, server.name, f"SSH login as {who} works ({duration_s:.1f} s)")
    return Finding(Level.FAIL, server.name, f"SSH login as {who} failed: {reason}")


def _gate(server: ServerConfig, hello: GateResult[GateHello]) -> list[Finding]:
    """What the gate's answer to `hello` says: installed, which version, whether the bot can restart through it."""
    ended = hello.command
    if ended.outcome is CommandOutcome.CONNECTION_ERROR:
        return [_login(server, False, ended.reason, ended.duration_s)]
    findings = [_login(server, True, "", ended.duration_s)]
    reply = hello.reply
    if reply is None:
        if ended.outcome is CommandOutcome.TIMED_OUT:
            text = f"poracle-gate did not answer hello: {ended.reason}"
            return [*findings, Finding(Level.FAIL, server.name, text, "see its log, ~/.local/state/poracle-gate/")]
        if hello.error_code == "no-reply":
            if _NODE_MISSING.search(ended.reason):
                fix = NODE_FIX
            elif ended.reason.endswith(f"Output: {NO_OUTPUT}") and ended.exit_code == 0:
                fix = EMPTY_GATE_FIX
            else:
                fix = GATE_INSTALL_FIX
            text = f"poracle-gate is not installed for the bot's key: {ended.reason}"
            return [*findings, Finding(Level.FAIL, server.name, text, fix)]
        return [*findings, Finding(Level.FAIL, server.name, ended.reason)]
    findings.append(_gate_version(server, reply))
    if "restart" not in reply.verbs:
        findings.append(
            Finding(
                Level.FAIL,
                server.name,
                "poracle-gate there does not allow restart: the bot cannot restart this server",
                'add restart to its --allow option (or its config file\'s "allow")',
            )
        )
    if reply.log_error:
        text = f"poracle-gate cannot write its log: {reply.log_error}"
        findings.append(Finding(Level.WARN, server.name, text, "make that directory writable, or give --log="))
    return findings


def _semver(version: str) -> tuple[int, ...] | None:
    return tuple(map(int, version.split("."))) if re.fullmatch(r"\d+\.\d+\.\d+", version) else None


def _gate_version(server: ServerConfig, reply: GateHello) -> Finding:
    shipped = gate.version()
    text = f"poracle-gate {reply.version} (protocol {PROTOCOL}), allows {', '.join(reply.verbs)}"
    found = _semver(reply.version)
    if found is not None and found >= (_semver(shipped) or ()):
        return Finding(Level.OK, server.name, text)
    return Finding(
        Level.WARN,
        server.name,
        f"{text}; this bot ships the newer {shipped}",
        "update it: step 1 of `poracle-bot gate` copies the new one",
    )


def _host_key(policy: HostKeyPolicy, check: HostKeyCheck) -> Finding:
    name = check.server.name
    trust = f"run `poracle-bot trust {shlex.quote(name)}`"
    if policy is HostKeyPolicy.OFF:
        return Finding(Level.WARN, name, f"host key {check.offered_text} is not verified (policy off)", trust)
    if check.state is PinState.PINNED:
        return Finding(Level.OK, name, f"host key {check.offered_text} is pinned")
    if check.state is PinState.CHANGED:
        return Finding(
            Level.FAIL,
            name,
            f"host key has CHANGED: pinned {check.pinned_text}, offered {check.offered_text}; restarts are refused",
            f"if the server was reinstalled, run `poracle-bot trust {shlex.quote(name)} --replace` to replace it; "
            "if not, someone may be intercepting the connection",
        )
    if policy is HostKeyPolicy.STRICT:
        return Finding(Level.FAIL, name, f"host key {check.offered_text} is not pinned and the policy is strict", trust)
    return Finding(
        Level.WARN,
        name,
        f"host key {check.offered_text} is not pinned yet",
        f"it will be pinned on the first restart, or {trust} to check and pin it now",
    )
