"""Configuration from environment variables and `.env`, validated once at start-up.

Every problem is collected and reported at once, each naming the variable an operator has to fix.
Real environment variables win over `.env`; an empty value counts as unset (a `KEY=` line in `.env`).
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
)

from bot.core.maintenance import Schedule, parse_windows, schedule, zone

SERVER_PREFIX = "PORACLE_SERVER_"
_SERVER_VAR = re.compile(r"^PORACLE_SERVER_(\d+)_([A-Z0-9_]+)$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
DEFAULT_RESTART_CMD = "pm2 restart all"
ALL = "all"


class ConfigError(Exception):
    """One or more configuration problems, each a line that starts with the variable's name."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class UnknownServer(LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"no server called {name!r}; known: {', '.join(known)} or {ALL}")
        self.name = name


class HostKeyPolicy(StrEnum):
    STRICT = "strict"
    ACCEPT_NEW = "accept-new"
    OFF = "off"


class Access(StrEnum):
    """What the bot may send a server: its RESTART_CMD only, or only poracle-gate's verbs."""

    COMMAND = "command"
    GATE = "gate"


def _check_host(value: str) -> str:
    host = value.strip()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise ValueError("must be a host name, an IPv4 or an IPv6 address") from None
    return host


def _check_url(value: str) -> str:
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. http://192.0.2.10:3030")
    try:
        parts.port  # noqa: B018 - urlsplit only validates the port when asked for it
    except ValueError:
        raise ValueError("has an invalid port") from None
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return url.rstrip("/")


def _check_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must start with /")
    return value


def _check_maintenance(value: str) -> str:
    parse_windows(value)
    return value


def _check_timezone(value: str) -> str:
    zone(value)
    return value.strip()


def _check_id_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ServerConfig(BaseModel):
    """One PoracleJS server: where to check it and how to restart it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    name: Annotated[str, Field(min_length=1, max_length=100)]
    host: Annotated[str, AfterValidator(_check_host)]
    api: Annotated[str, AfterValidator(_check_url)]
    health_path: Annotated[str, AfterValidator(_check_path)] = "/health"
    ssh_user: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")] = "root"
    ssh_port: Annotated[int, Field(ge=1, le=65535)] = 22
    ssh_key_path: Path
    restart_cmd: Annotated[str, Field(min_length=1)] = DEFAULT_RESTART_CMD
    access: Access = Access.COMMAND
    maintenance: Annotated[str, AfterValidator(_check_maintenance)] | None = None  # overrides PORACLE_MAINTENANCE

    @field_validator("name")
    @classmethod
    def _name_not_reserved(cls, value: str) -> str:
        value = value.strip()
        if value.lower() == ALL:
            raise ValueError(f"'{ALL}' is reserved (it means every server)")
        return value

    @property
    def health_url(self) -> str:
        return self.api + self.health_path

    @property
    def ssh_target(self) -> str:
        return f"{self.ssh_user}@{self.host}:{self.ssh_port}"


class Settings(BaseModel):
    """The whole validated configuration. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    discord_guild_id: PositiveInt | None = Field(None, alias="DISCORD_GUILD_ID")
    discord_admin_role_ids: frozenset[PositiveInt] = Field(frozenset(), alias="DISCORD_ADMIN_ROLE_IDS")
    discord_alert_channel_id: PositiveInt | None = Field(None, alias="DISCORD_ALERT_CHANNEL_ID")
    discord_alert_role_id: PositiveInt | None = Field(None, alias="DISCORD_ALERT_ROLE_ID")
    ssh_key_path: Path = Field(Path("/app/ssh_key"), alias="PORACLE_SSH_KEY_PATH")
    ssh_known_hosts: Path = Field(Path("/app/data/known_hosts"), alias="PORACLE_SSH_KNOWN_HOSTS")
    ssh_host_key_policy: HostKeyPolicy = Field(HostKeyPolicy.ACCEPT_NEW, alias="PORACLE_SSH_HOST_KEY_POLICY")
    ssh_timeout: PositiveFloat = Field(30.0, alias="PORACLE_SSH_TIMEOUT")
    ssh_connect_timeout: PositiveFloat = Field(10.0, alias="PORACLE_SSH_CONNECT_TIMEOUT")
    health_timeout: PositiveFloat = Field(5.0, alias="PORACLE_HEALTH_TIMEOUT")
    health_interval: PositiveFloat = Field(60.0, alias="PORACLE_HEALTH_INTERVAL")
    down_after: PositiveInt = Field(2, alias="PORACLE_DOWN_AFTER")
    up_after: PositiveInt = Field(1, alias="PORACLE_UP_AFTER")
    data_dir: Path = Field(Path("/app/data"), alias="PORACLE_DATA_DIR")
    status_channel_id: PositiveInt | None = Field(None, alias="PORACLE_STATUS_CHANNEL_ID")
    remind_every: NonNegativeInt = Field(0, alias="PORACLE_REMIND_EVERY")  # minutes; 0 = no reminders
    # A pm2 process restarted this many times within this many minutes is crash-looping (ACCESS=gate).
    crash_restarts: PositiveInt = Field(3, alias="PORACLE_CRASH_RESTARTS")
    crash_window: int = Field(10, ge=1, le=1440, alias="PORACLE_CRASH_WINDOW")
    maintenance: Annotated[str, AfterValidator(_check_maintenance)] | None = Field(None, alias="PORACLE_MAINTENANCE")
    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field("UTC", alias="PORACLE_TIMEZONE")
    servers: tuple[ServerConfig, ...] = ()

    _split_ids = field_validator("discord_admin_role_ids", mode="before")(_check_id_list)

    def server(self, name: str) -> ServerConfig | None:
        """The server called `name`, ignoring case."""
        wanted = name.strip().casefold()
        return next((s for s in self.servers if s.name.casefold() == wanted), None)

    def select(self, target: str) -> list[ServerConfig]:
        """`all`, or the one server of that name (any case); UnknownServer names the known ones."""
        if target.strip().casefold() == ALL:
            return list(self.servers)
        server = self.server(target)
        if server is None:
            raise UnknownServer(target, (s.name for s in self.servers))
        return [server]

    def maintenance_schedule(self, server: ServerConfig) -> Schedule:
        """The server's maintenance windows: its own, else PORACLE_MAINTENANCE's, in PORACLE_TIMEZONE."""
        return schedule(server.maintenance, self.timezone, self.maintenance)

    def variables(self) -> list[tuple[str, str]]:
        """The effective configuration as (variable, value) pairs, secrets masked."""
        shown: list[tuple[str, str]] = []
        for name, field in type(self).model_fields.items():
            if field.alias is None:
                continue
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                text = "******** (set)"
            elif isinstance(value, frozenset):
                text = ",".join(str(item) for item in sorted(value))
            else:
                text = "" if value is None else str(value)
            shown.append((field.alias, text or "(unset)"))
        for server in self.servers:
            for suffix, name in _SERVER_FIELDS.items():
                value = getattr(server, name)
                shown.append((f"{SERVER_PREFIX}{server.index}_{suffix}", "(unset)" if value is None else str(value)))
        return shown

    def require_discord(self) -> None:
        """`run` needs what the other commands do not: a token and at least one admin role."""
        problems = []
        if self.discord_token is None:
            problems.append("DISCORD_TOKEN: required to run the bot (the bot token from the Discord developer portal)")
        if not self.discord_admin_role_ids:
            problems.append(
                "DISCORD_ADMIN_ROLE_IDS: required to run the bot (comma-separated ids of the roles allowed to use it)"
            )
        if problems:
            raise ConfigError(problems)


_SERVER_FIELDS = {
    "NAME": "name",
    "HOST": "host",
    "API": "api",
    "HEALTH_PATH": "health_path",
    "SSH_USER": "ssh_user",
    "SSH_PORT": "ssh_port",
    "SSH_KEY_PATH": "ssh_key_path",
    "RESTART_CMD": "restart_cmd",
    "ACCESS": "access",
    "MAINTENANCE": "maintenance",
}
_SERVER_SUFFIXES = {field: suffix for suffix, field in _SERVER_FIELDS.items()}
_SETTINGS_ALIASES = {field.alias: name for name, field in Settings.model_fields.items() if field.alias}


def read_environment(env_file: Path | None = Path(".env"), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`.env` values overlaid by the real environment; empty values dropped."""
    dotenv: Mapping[str, str | None] = dotenv_values(env_file) if env_file is not None and env_file.is_file() else {}
    merged: dict[str, str] = {}
    # Empty values are dropped from each source before merging: an empty real variable (docker compose's
    # `KEY: ${KEY}` when the host has none) is unset, so it must not hide the value set in `.env`.
    for source in (dotenv, os.environ if environ is None else environ):
        merged.update({key: value.strip() for key, value in source.items() if value is not None and value.strip()})
    return merged


def likely_typos(env: Mapping[str, str]) -> list[str]:
    """Unknown variables that look like a misspelt setting. Others are left alone: operators often share
    one `.env` with PoracleWeb and friends, so an unknown PORACLE_ name is not an error in itself."""
    warnings = []
    for name in env:
        if name in _SETTINGS_ALIASES or name.startswith(SERVER_PREFIX):
            continue
        match = difflib.get_close_matches(name, _SETTINGS_ALIASES, n=1, cutoff=0.85)
        if match:
            warnings.append(f"{name}: not a setting; did you mean {match[0]}? (ignored)")
    return warnings


def access_warnings(settings: Settings) -> list[str]:
    """Settings that do nothing with the servers' access modes: worth a warning, not an error."""
    warnings = [
        f"{SERVER_PREFIX}{server.index}_RESTART_CMD: ignored, {SERVER_PREFIX}{server.index}_ACCESS is gate "
        "(the bot sends that server only poracle-gate's verbs; a restart restarts all its pm2 processes); remove it"
        for server in settings.servers
        if server.access is Access.GATE and "restart_cmd" in server.model_fields_set
    ]
    gated = any(server.access is Access.GATE for server in settings.servers)
    if gated and settings.crash_window * 60 < settings.health_interval:
        # Crash loops are seen in the rounds' process lists: a window shorter than a round holds no two of them.
        warnings.append(
            f"PORACLE_CRASH_WINDOW: {settings.crash_window} min is shorter than PORACLE_HEALTH_INTERVAL "
            f"({settings.health_interval:g} s), so no crash loop can be seen (only errored and stopped "
            f"processes); make it at least {math.ceil(settings.health_interval / 60)}"
        )
    return warnings


def _describe(error: Any, variable: str) -> str:
    message = "required" if error["type"] == "missing" else str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = f" (got {value!r})" if isinstance(value, str) and error["type"] != "missing" else ""
    return f"{variable}: {message}{shown}"


def _server_blocks(env: Mapping[str, str], problems: list[str]) -> dict[int, dict[str, str]]:
    blocks: dict[int, dict[str, str]] = {}
    for key, value in env.items():
        if not key.startswith(SERVER_PREFIX):
            continue
        match = _SERVER_VAR.match(key)
        if match is None or match.group(1).startswith("0"):
            problems.append(f"{key}: not a server variable; use PORACLE_SERVER_<N>_<FIELD> with N = 1, 2, 3, ...")
            continue
        number, field = int(match.group(1)), match.group(2)
        if field not in _SERVER_FIELDS:
            known = ", ".join(_SERVER_FIELDS)
            problems.append(f"{key}: unknown server setting {field!r} (known: {known})")
            continue
        blocks.setdefault(number, {})[_SERVER_FIELDS[field]] = value
    return blocks


def _load_servers(env: Mapping[str, str], default_key: Path, problems: list[str]) -> list[ServerConfig]:
    servers: list[ServerConfig] = []
    for number, fields in sorted(_server_blocks(env, problems).items()):
        data: dict[str, Any] = {"index": number, "name": f"Server {number}", "ssh_key_path": default_key} | fields
        try:
            servers.append(ServerConfig.model_validate(data))
        except ValidationError as exc:
            for error in exc.errors():
                field = _SERVER_SUFFIXES.get(str(error["loc"][0]), str(error["loc"][0]).upper())
                problems.append(_describe(error, f"{SERVER_PREFIX}{number}_{field}"))

    seen: dict[str, ServerConfig] = {}
    for server in servers:
        other = seen.setdefault(server.name.casefold(), server)
        if other is not server:
            problems.append(
                f"{SERVER_PREFIX}{server.index}_NAME: {server.name!r} is already the name of server {other.index}"
                " (names must be unique, ignoring case)"
            )
    if not servers and not problems:
        problems.append(
            f"{SERVER_PREFIX}1_HOST: no servers configured; set PORACLE_SERVER_1_HOST and PORACLE_SERVER_1_API"
        )
    return servers


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate everything in `env` (see `read_environment`); raise ConfigError listing every problem."""
    problems: list[str] = []
    try:
        settings = Settings.model_validate({k: v for k, v in env.items() if k in _SETTINGS_ALIASES})
    except ValidationError as exc:
        problems.extend(_describe(error, str(error["loc"][0])) for error in exc.errors())
        settings = Settings.model_validate({})
    default_key = Path(env.get("PORACLE_SSH_KEY_PATH", str(settings.ssh_key_path)))
    servers = _load_servers(env, default_key, problems)
    if problems:
        raise ConfigError(problems)
    return settings.model_copy(update={"servers": tuple(servers)})
