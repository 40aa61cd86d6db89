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
import unicodedata
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.core.maintenance import Schedule, parse_windows, schedule, zone

SERVER_PREFIX = "PORACLE_SERVER_"
_SERVER_VAR = re.compile(r"PORACLE_SERVER_([0-9]+)_([A-Z0-9_]+)")
MAX_SERVER_NUMBER = 9999
# PoracleJS's own variables (config/custom-environment-variables.json): a `.env` shared with it may set them.
_PORACLEJS_VARIABLES = frozenset({"PORACLE_SERVER_HOST", "PORACLE_SERVER_PORT"})
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
DEFAULT_RESTART_CMD = "pm2 restart all"
DEFAULT_DATA_DIR = Path("/app/data")
ALL = "all"
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


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


class Switch(StrEnum):
    ON = "on"
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
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if port == 0:
        raise ValueError("has an invalid port (0)")
    try:  # what the HTTP client does with the host; an empty or over-long label would fail there
        parts.hostname.encode("idna")
    except UnicodeError:
        raise ValueError("has an invalid host name") from None
    if "@" in parts.netloc:  # the URL is shown in doctor's lines and in Discord: no secret may ride in it
        raise ValueError("must not contain a user name or password")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return url.rstrip("/")


def _check_push_url(value: SecretStr) -> SecretStr:
    """PORACLE_HEARTBEAT_URL: an http(s) URL. It carries a secret (the check's key), so no error repeats it."""
    url = value.get_secret_value().strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. https://hc-ping.com/<your check's uuid>")
    try:
        port = parts.port
        parts.hostname.encode("idna")
    except (ValueError, UnicodeError):
        raise ValueError("has an invalid host name or port") from None
    if port == 0:
        raise ValueError("has an invalid port (0)")
    return SecretStr(url)


def masked_url(url: str) -> str:
    """A URL that carries a secret as it may be shown: its scheme, host and port, the rest hidden."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    return f"{parts.scheme}://{host}{port}/********"


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (an IPv6 address in brackets: `[::1]:9464`) as (host, port); ValueError says what is wrong."""
    text = value.strip()
    example = "e.g. 0.0.0.0:9464, 127.0.0.1:9464 or [::1]:9464"
    if text.startswith("["):
        host, bracket, port = text[1:].partition("]:")
        if not bracket:
            raise ValueError(f"must be [IPv6 address]:port, {example}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address; {example}") from None
    else:
        host, colon, port = text.rpartition(":")
        if not colon or not host:
            raise ValueError(f"must be host:port, {example}")
        if ":" in host:
            raise ValueError(f"an IPv6 address goes in brackets, {example}")
        _check_host(host)
    if not _INTEGER.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"the port must be from 1 to 65535, {example}")
    return host, int(port)


def _check_listen(value: str) -> str:
    parse_listen(value)
    return value.strip()


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


# Numbers are read as written in a `.env`: plain digits. Python (and so pydantic) would also take "+5", "1_000",
# "1e3", "inf", "nan" and other scripts' digits such as "١٢", none of which an operator means.
def _integer_text(value: Any) -> Any:
    if isinstance(value, str) and not _INTEGER.fullmatch(value):
        raise ValueError("must be an integer (digits 0-9 only)")
    return value


def _decimal_text(value: Any) -> Any:
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise ValueError("must be a number like 30 or 2.5 (digits 0-9 and a decimal point only)")
    return value


def _within(low: float, high: float, unit: str = "") -> AfterValidator:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be from {low:.15g} to {high:.15g}{unit}")
        return value

    return AfterValidator(check)


def _check_snowflake(value: int) -> int:
    if not 0 < value < 2**63:
        raise ValueError("is not a Discord id (those are positive integers below 2**63)")
    return value


Seconds = Annotated[float, BeforeValidator(_decimal_text), _within(0.1, 3600, " seconds")]
Interval = Annotated[float, BeforeValidator(_decimal_text), _within(0.1, 86400, " seconds")]
Checks = Annotated[int, BeforeValidator(_integer_text), _within(1, 100)]
Minutes = Annotated[int, BeforeValidator(_integer_text), _within(0, 10080, " minutes")]
SilenceMinutes = Annotated[int, BeforeValidator(_integer_text), _within(1, 10080, " minutes")]
WindowMinutes = Annotated[int, BeforeValidator(_integer_text), _within(1, 1440, " minutes")]
Jobs = Annotated[int, BeforeValidator(_integer_text), _within(1, 1_000_000, " jobs")]
Port = Annotated[int, BeforeValidator(_integer_text), _within(1, 65535)]
Restarts = Annotated[int, BeforeValidator(_integer_text), _within(1, 100, " restarts")]
Snowflake = Annotated[int, BeforeValidator(_integer_text), AfterValidator(_check_snowflake)]


class ServerConfig(BaseModel):
    """One PoracleJS server: where to check it and how to restart it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    name: Annotated[str, Field(min_length=1, max_length=100)]
    host: Annotated[str, AfterValidator(_check_host)]
    api: Annotated[str, AfterValidator(_check_url)]
    health_path: Annotated[str, AfterValidator(_check_path)] = "/health"
    ssh_user: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")] = "root"
    ssh_port: Port = 22
    ssh_key_path: Path
    restart_cmd: Annotated[str, Field(min_length=1)] = DEFAULT_RESTART_CMD
    access: Access = Access.COMMAND
    maintenance: Annotated[str, AfterValidator(_check_maintenance)] | None = None  # overrides PORACLE_MAINTENANCE
    metrics: Switch = Switch.OFF  # on: also read PoracleNG's <API>/metrics each round (stuck detection)
    auto_restart: Switch = Switch.OFF  # on: the bot restarts it on its own, within guard rails (autorestart.py)

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
    def metrics_url(self) -> str | None:
        return self.api + "/metrics" if self.metrics is Switch.ON else None

    @property
    def ssh_target(self) -> str:
        return f"{self.ssh_user}@{self.host}:{self.ssh_port}"


class Settings(BaseModel):
    """The whole validated configuration. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    discord_guild_id: Snowflake | None = Field(None, alias="DISCORD_GUILD_ID")
    discord_admin_role_ids: frozenset[Snowflake] = Field(frozenset(), alias="DISCORD_ADMIN_ROLE_IDS")
    discord_alert_channel_id: Snowflake | None = Field(None, alias="DISCORD_ALERT_CHANNEL_ID")
    discord_alert_role_id: Snowflake | None = Field(None, alias="DISCORD_ALERT_ROLE_ID")
    ssh_key_path: Path = Field(Path("/app/ssh_key"), alias="PORACLE_SSH_KEY_PATH")
    # Unset: known_hosts in PORACLE_DATA_DIR (see _known_hosts_in_data_dir).
    ssh_known_hosts: Path = Field(DEFAULT_DATA_DIR / "known_hosts", alias="PORACLE_SSH_KNOWN_HOSTS")
    ssh_host_key_policy: HostKeyPolicy = Field(HostKeyPolicy.ACCEPT_NEW, alias="PORACLE_SSH_HOST_KEY_POLICY")
    ssh_timeout: Seconds = Field(30.0, alias="PORACLE_SSH_TIMEOUT")
    ssh_connect_timeout: Seconds = Field(10.0, alias="PORACLE_SSH_CONNECT_TIMEOUT")
    health_timeout: Seconds = Field(5.0, alias="PORACLE_HEALTH_TIMEOUT")
    health_interval: Interval = Field(60.0, alias="PORACLE_HEALTH_INTERVAL")
    down_after: Checks = Field(2, alias="PORACLE_DOWN_AFTER")
    up_after: Checks = Field(1, alias="PORACLE_UP_AFTER")
    data_dir: Path = Field(DEFAULT_DATA_DIR, alias="PORACLE_DATA_DIR")
    status_channel_id: Snowflake | None = Field(None, alias="PORACLE_STATUS_CHANNEL_ID")
    remind_every: Minutes = Field(0, alias="PORACLE_REMIND_EVERY")  # minutes; 0 = no reminders
    # A pm2 process restarted this many times within this many minutes is crash-looping (ACCESS=gate).
    crash_restarts: Checks = Field(3, alias="PORACLE_CRASH_RESTARTS")
    crash_window: WindowMinutes = Field(10, alias="PORACLE_CRASH_WINDOW")
    maintenance: Annotated[str, AfterValidator(_check_maintenance)] | None = Field(None, alias="PORACLE_MAINTENANCE")
    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field("UTC", alias="PORACLE_TIMEZONE")
    # PoracleNG's delivery channel holds 200 jobs by default: a backlog held above 90 % of it means sends do
    # not keep up, and once it is full every render and webhook handler upstream blocks (README, Configuration).
    queue_limit: Jobs = Field(180, alias="PORACLE_QUEUE_LIMIT")
    webhook_silence: SilenceMinutes = Field(10, alias="PORACLE_WEBHOOK_SILENCE")
    # Servers with AUTO_RESTART=on: restarted once in trouble this many minutes, at most LIMIT times in 6 h.
    auto_restart_after: WindowMinutes = Field(5, alias="PORACLE_AUTO_RESTART_AFTER")
    auto_restart_limit: Restarts = Field(3, alias="PORACLE_AUTO_RESTART_LIMIT")
    # Requested after every round (healthchecks.io, Uptime Kuma push): someone watching the watcher.
    heartbeat_url: Annotated[SecretStr, AfterValidator(_check_push_url)] | None = Field(
        None, alias="PORACLE_HEARTBEAT_URL"
    )
    metrics_listen: Annotated[str, AfterValidator(_check_listen)] | None = Field(None, alias="PORACLE_METRICS_LISTEN")
    servers: tuple[ServerConfig, ...] = ()

    _split_ids = field_validator("discord_admin_role_ids", mode="before")(_check_id_list)

    @model_validator(mode="before")
    @classmethod
    def _known_hosts_in_data_dir(cls, data: Any) -> Any:
        """PORACLE_SSH_KNOWN_HOSTS unset: the file lives with the rest of the state, wherever that is."""
        if not isinstance(data, Mapping) or {"PORACLE_SSH_KNOWN_HOSTS", "ssh_known_hosts"} & data.keys():
            return data
        data_dir = data.get("PORACLE_DATA_DIR", data.get("data_dir", DEFAULT_DATA_DIR))
        return {**data, "PORACLE_SSH_KNOWN_HOSTS": Path(data_dir) / "known_hosts"}

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

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """Where the bot's own Prometheus metrics are served (PORACLE_METRICS_LISTEN); None: not at all."""
        return None if self.metrics_listen is None else parse_listen(self.metrics_listen)

    def variables(self) -> list[tuple[str, str]]:
        """The effective configuration as (variable, value) pairs, secrets masked."""
        shown: list[tuple[str, str]] = []
        for name, field in type(self).model_fields.items():
            if field.alias is None:
                continue
            value = getattr(self, name)
            if name == "heartbeat_url" and value is not None:
                text = f"{masked_url(value.get_secret_value())} (set)"
            elif isinstance(value, SecretStr):
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
    "METRICS": "metrics",
    "AUTO_RESTART": "auto_restart",
}
_SERVER_SUFFIXES = {field: suffix for suffix, field in _SERVER_FIELDS.items()}
_SETTINGS_ALIASES = {field.alias: name for name, field in Settings.model_fields.items() if field.alias}
_SECRET_VARIABLES = frozenset({"DISCORD_TOKEN", "PORACLE_HEARTBEAT_URL"})  # never quoted back in an error


def read_environment(env_file: Path | None = Path(".env"), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`.env` values overlaid by the real environment; empty values dropped. No such file: no values from it
    (the environment alone may configure the bot); one that cannot be read is a ConfigError naming it."""
    dotenv: Mapping[str, str | None] = {}
    if env_file is not None and env_file.is_file():
        try:
            dotenv = dotenv_values(env_file, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{env_file}: cannot read this .env file: {exc}"]) from None
    merged: dict[str, str] = {}
    # Empty values are dropped from each source before merging: an empty real variable (docker compose's
    # `KEY: ${KEY}` when the host has none) is unset, so it must not hide the value set in `.env`.
    for source in (dotenv, os.environ if environ is None else environ):
        merged.update({key: value.strip() for key, value in source.items() if value is not None and value.strip()})
    return merged


def likely_typos(env: Mapping[str, str]) -> list[str]:
    """Unknown variables that look like a misspelt setting, global or of a server. Others are left alone:
    operators often share one `.env` with PoracleJS, PoracleWeb and friends, so an unknown PORACLE_ name is
    not an error in itself. (Names that start with PORACLE_SERVER_ are checked strictly by load_settings.)"""
    warnings = []
    for name in env:
        if name in _SETTINGS_ALIASES or name.startswith(SERVER_PREFIX):
            continue
        match = difflib.get_close_matches(name.upper(), _SETTINGS_ALIASES, n=1, cutoff=0.85) or _near_server(name)
        if match:
            warnings.append(f"{_shown(name)}: not a setting; did you mean {match[0]}? (ignored)")
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


_SERVER_TEMPLATES = {f"{SERVER_PREFIX}<N>_{suffix}": suffix for suffix in _SERVER_FIELDS}


def _near_server(name: str) -> list[str]:
    """The server variable `name` is a near miss of (PORACLE_SEVRER_2_HOST, PORACLE_SERVER2_HOST, ...)."""
    number = re.search(r"\d+", name)
    if number is None:  # every server variable has its number
        return []
    template = f"{name[: number.start()]}<N>{name[number.end() :]}".upper()
    match = difflib.get_close_matches(template, _SERVER_TEMPLATES, n=1, cutoff=0.85)
    return [f"{SERVER_PREFIX}{int(number.group())}_{_SERVER_TEMPLATES[match[0]]}"] if match else []


def _shown(name: str) -> str:
    """A variable's name as printed: quoted when it holds characters a terminal would not show as they are."""
    return name if name.isascii() and name.isprintable() else ascii(name)


def _unprintable(env: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """`env` without the values that hold control characters (a line break, a tab, an escape: they would
    garble every line the value is shown in) or bytes that are not UTF-8 (Python keeps them as surrogates,
    which no terminal can print); those of this bot's variables are reported, without their value."""
    clean = {}
    for name, value in env.items():
        if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
            if name in _SETTINGS_ALIASES or name.startswith(SERVER_PREFIX):
                problems.append(
                    f"{_shown(name)}: must be UTF-8 text without control characters (line breaks, tabs, escapes)"
                )
            continue
        clean[name] = value
    return clean


# A refused value is quoted without what comes before an `@` (a URL's user:password@, or a bare token@host).
_CREDENTIALS = re.compile(r"^([a-z][a-z0-9+.-]*://)?\S*@", re.IGNORECASE)
_MASKED = r"\1********@"


def _describe(error: Any, variable: str) -> str:
    message = "required" if error["type"] == "missing" else str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    quoted = isinstance(value, str) and error["type"] != "missing" and variable not in _SECRET_VARIABLES
    shown = f" (got {_CREDENTIALS.sub(_MASKED, value)!r})" if quoted else ""
    return f"{variable}: {message}{shown}"


def _server_blocks(env: Mapping[str, str], problems: list[str]) -> dict[int, dict[str, str]]:
    blocks: dict[int, dict[str, str]] = {}
    for key, value in env.items():
        if not key.startswith(SERVER_PREFIX) or key in _PORACLEJS_VARIABLES:
            continue
        match = _SERVER_VAR.fullmatch(key)
        if match is None or match.group(1).startswith("0"):
            problems.append(
                f"{_shown(key)}: not a server variable; use PORACLE_SERVER_<N>_<FIELD> with N = 1, 2, 3, ..."
            )
            continue
        number, field = int(match.group(1)), match.group(2)
        if number > MAX_SERVER_NUMBER:
            problems.append(f"{key}: server numbers go from 1 to {MAX_SERVER_NUMBER}")
            continue
        if field not in _SERVER_FIELDS:
            known = ", ".join(_SERVER_FIELDS)
            problems.append(f"{key}: unknown server setting {field!r} (known: {known})")
            continue
        blocks.setdefault(number, {})[_SERVER_FIELDS[field]] = value
    return blocks


def _load_servers(env: Mapping[str, str], default_key: Path, problems: list[str]) -> list[ServerConfig]:
    servers: list[ServerConfig] = []
    blocks = _server_blocks(env, problems)
    for number, fields in sorted(blocks.items()):
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
    if not blocks:  # even beside other problems: a misspelt block must not leave a bot that watches nothing
        problems.append(
            f"{SERVER_PREFIX}1_HOST: no servers configured; set PORACLE_SERVER_1_HOST and PORACLE_SERVER_1_API"
        )
    return servers


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate everything in `env` (see `read_environment`); raise ConfigError listing every problem."""
    problems: list[str] = []
    env = _unprintable(env, problems)
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
