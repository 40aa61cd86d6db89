"""The bot's side of the poracle-gate protocol (bot/gate/PROTOCOL.md): the commands it sends and the reading
of the gate's answers.

Pure: no I/O and nothing from the rest of the bot, so any transport can use it. Commands are built only from
values checked with the gate's own rules (ValueError otherwise); a parser takes the raw session output (a pty
turns ``\\n`` into ``\\r\\n`` and merges stderr; the shell may print before the gate) and returns a typed reply
(its names one line of plain text) or raises :class:`GateError` with words a person can act on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

PROTOCOL = 1
PROGRAM = "poracle-gate"
VERBS = ("hello", "processes", "restart", "logs")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@:-]{0,63}")
MAX_PM2_ID = 999_999
MAX_LOG_LINES = 200
MAX_COMMAND_BYTES = 256
_OUTPUT_IN_ERROR = 300  # characters of non-gate output quoted in an error
NO_OUTPUT = "(no output)"  # what a no-reply error quotes when the session printed nothing at all

JsonObject: TypeAlias = dict[str, object]


class GateError(Exception):
    """The gate refused or failed (``code`` is its error code), or its answer was missing or malformed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ------------------------------------------------------------------------------------------- commands


def _command(verb: str, *args: str) -> str:
    return " ".join((PROGRAM, str(PROTOCOL), verb, *args))


def _target(target: str | int, *, allow_all: bool) -> str:
    """A pm2 process as the gate accepts it: an id (int), a name, or "all" where allowed."""
    if isinstance(target, bool):
        raise ValueError(f"not a pm2 process name or id: {target!r}")
    if isinstance(target, int):
        if not 0 <= target <= MAX_PM2_ID:
            raise ValueError(f"pm2 id out of range 0..{MAX_PM2_ID}: {target}")
        return str(target)
    if target == "all" and allow_all:
        return target
    # Digits are an id to pm2 and the gate: pass an int for an id.
    if target == "all" or target.isdigit() or not NAME_PATTERN.fullmatch(target):
        raise ValueError(f"not a pm2 process name the gate accepts: {target!r}")
    return target


def hello_command() -> str:
    return _command("hello")


def processes_command() -> str:
    return _command("processes")


def restart_command(target: str | int) -> str:
    """Restart one process (name or id) or ``"all"``."""
    return _command("restart", _target(target, allow_all=True))


def logs_command(target: str | int, lines: int) -> str:
    """The last ``lines`` (1..200) lines of one process's out and error logs."""
    if isinstance(lines, bool) or not 1 <= lines <= MAX_LOG_LINES:
        raise ValueError(f"log lines must be 1..{MAX_LOG_LINES}, not {lines!r}")
    return _command("logs", _target(target, allow_all=False), str(lines))


# -------------------------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class GateReply:
    # Set when the gate ran the verb but could not write its own log: worth telling the server's admin.
    log_error: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class GateHello(GateReply):
    version: str
    protocol: int
    verbs: tuple[str, ...]  # the verbs this installation allows


@dataclass(frozen=True)
class Pm2Process:
    name: str
    pm_id: int
    status: str
    pid: int | None  # None when not running
    started_at: datetime | None
    restarts: int
    unstable_restarts: int
    memory_bytes: int | None
    cpu_percent: float | None
    exit_code: int | None


@dataclass(frozen=True)
class GateProcesses(GateReply):
    processes: tuple[Pm2Process, ...]


@dataclass(frozen=True)
class RestartedProcess:
    name: str | None
    pm_id: int
    pid_before: int | None
    pid_after: int | None  # None when pm2 did not list it after the restart
    status: str | None

    @property
    def new_pid(self) -> bool:
        return self.pid_after is not None and self.pid_after != self.pid_before


@dataclass(frozen=True)
class GateRestart(GateReply):
    target: str
    exit_code: int
    output: tuple[str, ...]  # pm2's output, cleaned and redacted by the gate, last lines only
    processes: tuple[RestartedProcess, ...]


@dataclass(frozen=True)
class GateLogs(GateReply):
    name: str
    pm_id: int
    lines: tuple[str, ...]  # the out log (both streams when pm2 writes one file)
    error_lines: tuple[str, ...]


# -------------------------------------------------------------------------------------------- parsing


def _bad(key: str, expected: str) -> GateError:
    return GateError("bad-reply", f"{PROGRAM} answered with a malformed {key!r} (expected {expected})")


# Control characters (C0, DEL, C1), line and paragraph separators, bidirectional overrides.
_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _line(text: str) -> str:
    """Remote text that names something (a pm2 process can be called anything) as one line of plain text, so it
    can neither forge a log line nor drive a terminal nor garble a table or a message. What cannot be shown is
    replaced, not dropped: the name never becomes another process's name (the gate takes none with �)."""
    return _UNSHOWABLE.sub("\ufffd", text)


def _str(obj: JsonObject, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _bad(key, "a string")
    return _line(value)


def _opt_str(obj: JsonObject, key: str) -> str | None:
    return None if obj.get(key) is None else _str(obj, key)


def _int(obj: JsonObject, key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, "an integer")
    return value


def _opt_int(obj: JsonObject, key: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key)


def _opt_float(obj: JsonObject, key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, "a number")
    return float(value)


def _strs(obj: JsonObject, key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad(key, "a list of strings")
    return tuple(value)


def _objects(obj: JsonObject, key: str) -> list[JsonObject]:
    value = obj.get(key)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _bad(key, "a list of objects")
    return value


def _last_gate_object(output: str) -> JsonObject | None:
    for line in reversed(output.replace("\r", "\n").split("\n")):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and "gate" in value:
            return value
    return None


def _refusal(reply: JsonObject, verb: str) -> GateError:
    code = reply.get("error")
    message = reply.get("message")
    code = code if isinstance(code, str) else "bad-reply"
    message = message if isinstance(message, str) else "(no message)"
    version = reply.get("version")
    gate = f"{PROGRAM} {version}" if isinstance(version, str) else PROGRAM
    if code == "unknown-verb":
        return GateError(code, f"gate too old: {gate} does not know {verb!r}; update {PROGRAM}")
    if code == "unsupported-protocol":
        protocols = reply.get("protocols")
        newer = isinstance(protocols, list) and all(isinstance(p, int) and p > PROTOCOL for p in protocols)
        update = "poracle-bot" if newer and protocols else PROGRAM  # the older side is the one to update
        return GateError(code, f"{gate} speaks protocol {protocols}, this bot protocol {PROTOCOL}: update {update}")
    if code == "not-allowed":
        return GateError(code, f"{gate} on this server does not allow {verb!r} (allowed: {reply.get('verbs')})")
    return GateError(code, f"{gate}: {message}")


def read_reply(output: str, verb: str) -> JsonObject:
    """The gate's answer to ``verb`` in raw session output, when it says ok; else raises GateError."""
    reply = _last_gate_object(output)
    if reply is None:
        shown = output.strip()[-_OUTPUT_IN_ERROR:] or NO_OUTPUT
        raise GateError(
            "no-reply", f"no answer from {PROGRAM}; is it the forced command of the bot's key? Output: {shown}"
        )
    if reply.get("gate") != PROTOCOL:
        raise GateError("bad-reply", f"{PROGRAM} answered in protocol {reply.get('gate')!r}, not {PROTOCOL}")
    if reply.get("ok") is not True:
        raise _refusal(reply, verb)
    if reply.get("verb") != verb:
        raise GateError("bad-reply", f"{PROGRAM} answered {reply.get('verb')!r} to {verb!r}")
    return reply


def _started_at(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def parse_hello(output: str) -> GateHello:
    reply = read_reply(output, "hello")
    protocols = reply.get("protocols")
    if not isinstance(protocols, list) or PROTOCOL not in protocols:
        raise _bad("protocols", f"a list holding {PROTOCOL}")
    return GateHello(
        version=_str(reply, "version"),
        protocol=PROTOCOL,
        verbs=tuple(map(_line, _strs(reply, "verbs"))),
        log_error=_opt_str(reply, "log_error"),
    )


def parse_processes(output: str) -> GateProcesses:
    reply = read_reply(output, "processes")
    return GateProcesses(
        processes=tuple(
            Pm2Process(
                name=_str(item, "name"),
                pm_id=_int(item, "pm_id"),
                status=_str(item, "status"),
                pid=_opt_int(item, "pid"),
                started_at=_started_at(_opt_int(item, "started_at_ms")),
                restarts=_int(item, "restarts"),
                unstable_restarts=_int(item, "unstable_restarts"),
                memory_bytes=_opt_int(item, "memory_bytes"),
                cpu_percent=_opt_float(item, "cpu_percent"),
                exit_code=_opt_int(item, "exit_code"),
            )
            for item in _objects(reply, "processes")
        ),
        log_error=_opt_str(reply, "log_error"),
    )


def parse_restart(output: str) -> GateRestart:
    reply = read_reply(output, "restart")
    return GateRestart(
        target=_str(reply, "target"),
        exit_code=_int(reply, "exit_code"),
        output=_strs(reply, "output"),
        processes=tuple(
            RestartedProcess(
                name=_opt_str(item, "name"),
                pm_id=_int(item, "pm_id"),
                pid_before=_opt_int(item, "pid_before"),
                pid_after=_opt_int(item, "pid_after"),
                status=_opt_str(item, "status"),
            )
            for item in _objects(reply, "processes")
        ),
        log_error=_opt_str(reply, "log_error"),
    )


def parse_logs(output: str) -> GateLogs:
    reply = read_reply(output, "logs")
    return GateLogs(
        name=_str(reply, "name"),
        pm_id=_int(reply, "pm_id"),
        lines=_strs(reply, "lines"),
        error_lines=_strs(reply, "error_lines"),
        log_error=_opt_str(reply, "log_error"),
    )
