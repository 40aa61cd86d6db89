"""The command line: `poracle-bot check | restart | processes | logs | config | run | doctor | trust | gate |
healthcheck`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import (
    ALL,
    ConfigError,
    Settings,
    UnknownServer,
    access_warnings,
    likely_typos,
    load_settings,
    read_environment,
)
from bot.core import heartbeat
from bot.core.gate_protocol import MAX_LOG_LINES
from bot.core.output import format_table

# Each command imports what it needs when it runs: `config` and Docker's minutely `healthcheck` need neither
# aiohttp nor asyncssh (0.7 s of imports), and `run` alone needs discord.py.
if TYPE_CHECKING:
    from bot.core.health import HealthResult
    from bot.core.service import RestartResult

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_BUSY = 75  # sysexits' EX_TEMPFAIL: refused while another restart runs there; try again later
EXIT_UNHEALTHY = 1
EXIT_DEGRADED = 3  # `check`: every server answers, but some refuse the bot or are stuck


def setup_logging(level: int = logging.WARNING, *, debug: bool = False) -> None:
    """Log lines in the style of discord.py's `setup_logging`; asyncssh is chatty below WARNING. `debug`: the
    bot's own DEBUG lines too (e.g. every automatic-restart decision), not the libraries' (discord.py's DEBUG
    carries whole gateway payloads)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("[{asctime}] [{levelname:<8}] {name}: {message}", "%Y-%m-%d %H:%M:%S", style="{")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    logging.getLogger("bot").setLevel(logging.DEBUG if debug else logging.NOTSET)


def health_row(result: HealthResult) -> list[str]:
    return [
        result.server,
        result.condition.value,
        str(result.status) if result.status is not None else "-",
        f"{result.latency_ms:.0f} ms" if result.latency_ms is not None else "-",
        result.reason or result.detail or "",
    ]


def describe_restart(result: RestartResult) -> str:
    lines = [f"{result.server}: {result.word} ({result.reason})"]
    lines.extend("  restarted " + line for line in result.process_lines())
    if result.command is not None:
        lines[0] += f" in {result.command.duration_s:.1f} s"
        if result.command.output:
            lines.extend("  | " + line for line in result.command.output.splitlines())
    if result.health is not None:
        answer = "yes" if result.health.online else f"no ({result.health.reason})"
        lines.append(f"  answers its health check: {answer}")
    return "\n".join(lines)


async def _check(settings: Settings) -> int:
    from bot.core.health import Condition, HealthChecker
    from bot.core.stuck import StuckTracker

    async with HealthChecker(settings.health_timeout) as checker:
        results = StuckTracker.configured(settings).judge(await checker.check_all(settings.servers), remember=False)
    print(format_table([["SERVER", "STATUS", "HTTP", "LATENCY", "REASON"], *map(health_row, results)]))
    if not all(result.online for result in results):
        return 1
    return 0 if all(result.condition is Condition.ONLINE for result in results) else EXIT_DEGRADED


def _open_files(settings: Settings) -> None:
    """Raise the open-files limit if every server at once needs more; say so once if it cannot be."""
    from bot.core import open_files

    limit = open_files.ensure(len(settings.servers))
    if limit.raised_from is not None:
        log.info("Open files: %s", limit.describe())
    if (problem := limit.problem()) is not None:
        log.warning("%s; %s", problem, limit.fix())


def _confirm(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:  # no terminal to answer: never restart by default
        print()
        return False


async def _restart(settings: Settings, target: str, assume_yes: bool) -> int:
    from bot.core.service import PoracleService, Requester, restart_request
    from bot.core.store import Origin, Store, StoreError

    servers = settings.select(target)
    for server in servers:
        print(f"{server.name}: ssh {server.ssh_target} -- {restart_request(server)}")
    if not assume_yes and not _confirm(f"Restart {len(servers)} server(s)?"):
        print("Cancelled: nothing was run.")
        return 1
    try:  # the audit: /poracle history shows restarts made here too
        store = Store.open(settings.data_dir)
    except StoreError as exc:
        raise ConfigError([str(exc)]) from None
    try:
        async with PoracleService(settings, store) as service:
            results = await service.restart_many(servers, Requester(Origin.CLI, getpass.getuser()))
    finally:
        store.close()
    print("\n".join(describe_restart(result) for result in results))
    if all(result.succeeded for result in results):
        return 0
    return EXIT_BUSY if all(result.succeeded or result.busy for result in results) else 1


async def _processes(settings: Settings, name: str) -> int:
    from bot.cli.processes import show_processes

    return await show_processes(settings, name)


async def _logs(settings: Settings, name: str, process: str, lines: int) -> int:
    from bot.cli.processes import show_logs

    return await show_logs(settings, name, process, lines)


def _config(settings: Settings) -> int:
    print("\n".join(f"{name}={value}" for name, value in settings.variables()))
    return 0


async def _trust(settings: Settings, target: str, assume_yes: bool, replace: bool) -> int:
    from bot.cli.trust import trust_servers

    servers = settings.select(target)
    return await trust_servers(settings, servers, assume_yes=assume_yes, replace=replace, confirm=_confirm)


def _gate(settings: Settings, node: str | None) -> int:
    from bot.cli.gate import instructions

    print(instructions(settings, node))
    return 0


def heartbeat_max_age(settings: Settings) -> timedelta:
    """How old the last monitor round may be while the bot still counts as working.

    A round starts every PORACLE_HEALTH_INTERVAL and takes up to PORACLE_HEALTH_TIMEOUT (servers are checked
    at once) plus the time to post its alerts. Two missed rounds are tolerated (3 intervals: one slow round
    must not make Docker call the bot unhealthy), plus one round's checks and 60 s for Discord's rate limits.
    """
    return timedelta(seconds=3 * settings.health_interval + settings.health_timeout + 60)


def _healthcheck(settings: Settings) -> int:
    """Healthy while the monitor's rounds run. Discord being away does not make the bot unhealthy (restarting
    it would not bring Discord back, and the alerts wait in its outbox): the words say so, e.g.
    `healthy: monitoring; not connected to Discord for 12 min, 3 alerts waiting`."""
    beat = heartbeat.read(settings.data_dir)
    if beat is None:
        problem = f"no heartbeat in {settings.data_dir}: the bot is not running or has not finished a monitor round"
    else:
        problem = beat.problem(heartbeat_max_age(settings)) or ""
        if not problem:
            print(f"healthy: {beat.state()}")
            return 0
    print(f"unhealthy: {problem}", file=sys.stderr)
    return EXIT_UNHEALTHY


def _run(settings: Settings) -> int:
    settings.require_discord()
    from bot.discord_bot.client import run_bot

    run_bot(settings)
    return 0


def _add_options(parser: argparse.ArgumentParser, *, in_command: bool) -> None:
    """The options every command takes, before or after its name. A command's own copy has no default, so
    it does not undo one given before the command (`--env-file x check`)."""
    keep: dict[str, Any] = {"default": argparse.SUPPRESS} if in_command else {}
    help_env = "read settings from FILE, which must exist (default: ./.env, if there is one)"
    parser.add_argument("--env-file", type=Path, metavar="FILE", help=help_env, **keep)
    help_verbose = "log what happens (INFO level); twice (-vv): the bot's DEBUG lines too"
    parser.add_argument("-v", "--verbose", action="count", help=help_verbose, **keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poracle-bot",
        description="Check and restart PoracleJS servers; run the Discord bot that does it for your admins.",
    )
    _add_options(parser, in_command=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary)
        _add_options(sub, in_command=True)
        return sub

    command("check", "check every server's health; exit 0: all online, 1: any offline, 3: none offline, some degraded")
    restart = command("restart", "restart one server, or all of them, over SSH")
    restart.add_argument("server", metavar="NAME", help=f"a configured server name, or '{ALL}'")
    restart.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    processes = command("processes", "list a server's pm2 processes through poracle-gate")
    processes.add_argument("server", metavar="NAME", help="a configured server name (with ACCESS=gate)")
    logs = command("logs", "print the end of a pm2 process's log through poracle-gate, redacted")
    logs.add_argument("server", metavar="NAME", help="a configured server name (with ACCESS=gate)")
    logs.add_argument("process", metavar="PROCESS", help="the pm2 process: its name or id")
    logs.add_argument(
        "--lines", type=_log_lines, default=50, metavar="N", help=f"how many lines, 1 to {MAX_LOG_LINES} (default 50)"
    )
    command("config", "print the effective configuration (secrets masked)")
    command("run", "run the Discord bot")
    command("doctor", "check the configuration, the SSH key and every server (API, host key, login); changes nothing")
    trust = command("trust", "show servers' SSH host key fingerprints and pin them in known_hosts")
    trust.add_argument("server", metavar="NAME", nargs="?", default=ALL, help=f"a server name, or '{ALL}' (default)")
    trust.add_argument("-y", "--yes", action="store_true", help="pin keys not pinned yet without asking")
    trust.add_argument(
        "--replace", action="store_true", help="replace a pinned key that has CHANGED (asks first, unless --yes)"
    )
    gate = command("gate", "print how to limit the bot's SSH key to poracle-gate on each server; connects nowhere")
    gate.add_argument("--program", action="store_true", help="print only the gate program (needs no configuration)")
    gate.add_argument(
        "--node", type=_node_path, metavar="PATH", help="node's full path on the servers, when SSH commands lack it"
    )
    command("healthcheck", "exit 0 while the running bot's monitor rounds run (connected to Discord or not)")
    return parser


def _read_environment(env_file: Path | None) -> dict[str, str]:
    """`--env-file` must name a file; without it, ./.env is read if there is one."""
    if env_file is not None and not env_file.is_file():
        what = "is not a file" if env_file.exists() else "no such file"
        raise ConfigError([f"--env-file {env_file}: {what}"])
    return read_environment(Path(".env") if env_file is None else env_file)


def nothing_read(env_file: Path | None, env: Mapping[str, str]) -> str | None:
    """When no settings came from anywhere, the likely reason: the command ran away from its .env."""
    if env_file is not None or Path(".env").is_file() or any(key.startswith(("PORACLE_", "DISCORD_")) for key in env):
        return None
    return (
        f"no .env in {Path.cwd()} and no PORACLE_ or DISCORD_ variable set: run poracle-bot in the directory "
        "of your .env, or pass --env-file PATH"
    )


def _log_lines(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_LOG_LINES:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_LOG_LINES}, not {value!r}")
    return int(value)


def _node_path(value: str) -> str:
    from bot.cli.gate import node_path

    try:
        return node_path(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbosity = args.verbose or 0
    setup_logging(logging.INFO if verbosity or args.command == "run" else logging.WARNING, debug=verbosity > 1)
    env: dict[str, str] = {}
    try:
        env = _read_environment(args.env_file)
        for warning in likely_typos(env):
            log.warning("%s", warning)
        if args.command == "doctor":  # doctor reports a bad configuration in its own checklist
            from bot.cli.doctor import run_doctor

            return asyncio.run(run_doctor(env, nothing_read(args.env_file, env)))
        if args.command == "gate" and args.program:  # the program alone: before any configuration is read
            from bot.gate import program_text

            sys.stdout.write(program_text())
            return 0
        settings = load_settings(env)
        for warning in access_warnings(settings):
            log.warning("%s", warning)
        if args.command in ("check", "restart", "run", "trust"):  # the commands that reach the servers
            _open_files(settings)
        handlers: dict[str, Callable[[], int]] = {
            "check": lambda: asyncio.run(_check(settings)),
            "restart": lambda: asyncio.run(_restart(settings, args.server, args.yes)),
            "processes": lambda: asyncio.run(_processes(settings, args.server)),
            "logs": lambda: asyncio.run(_logs(settings, args.server, args.process, args.lines)),
            "config": lambda: _config(settings),
            "run": lambda: _run(settings),
            "trust": lambda: asyncio.run(_trust(settings, args.server, args.yes, args.replace)),
            "gate": lambda: _gate(settings, args.node),
            "healthcheck": lambda: _healthcheck(settings),
        }
        return handlers[args.command]()
    except ConfigError as exc:
        print("poracle-bot: configuration error:", file=sys.stderr)
        print("\n".join(f"  - {problem}" for problem in exc.problems), file=sys.stderr)
        if hint := nothing_read(args.env_file, env):
            print(f"  ({hint})", file=sys.stderr)
        # Docker reserves a HEALTHCHECK's exit status 2: a bot that cannot read its configuration is unhealthy.
        return EXIT_UNHEALTHY if args.command == "healthcheck" else EXIT_CONFIG
    except UnknownServer as exc:
        print(f"poracle-bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run_main() -> None:
    """The console script's entry point."""
    sys.exit(main())
