"""The open-files limit (RLIMIT_NOFILE) against what the bot needs: every server is checked at once, each check
a socket. A soft limit that is too low is raised up to the hard one (any process may); when even that is too low,
health checks wait for a free socket instead of failing with "Too many open files", and the bot says so once."""

from __future__ import annotations

import resource
from dataclasses import dataclass

# Per server at once: its health check's socket and, during a restart, its SSH connection and its lock file.
PER_SERVER = 3
# Everything else: stdio, the event loop, SQLite (database, WAL, shared memory), Discord's connections, logs.
RESERVE = 64
SUGGESTED = 65536  # what docker-compose.yml sets
UNLIMITED = 2**62


def needed(servers: int) -> int:
    """File descriptors the bot needs with `servers` configured."""
    return servers * PER_SERVER + RESERVE


def check_slots(limit: int) -> int:
    """How many health checks may hold a socket at once under the soft limit `limit`."""
    return max(1, (limit - RESERVE) // PER_SERVER)


def _limits() -> tuple[int, int]:
    """(soft, hard), an unlimited one as a number larger than any need."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _finite(soft), _finite(hard)


def _finite(value: int) -> int:
    return UNLIMITED if value == resource.RLIM_INFINITY else value


def soft_limit() -> int:
    return _limits()[0]


@dataclass(frozen=True, slots=True)
class OpenFiles:
    """The limit in force against the need of `servers` servers; `raised_from` when start-up raised it."""

    servers: int
    limit: int
    hard: int
    raised_from: int | None = None

    @property
    def need(self) -> int:
        return needed(self.servers)

    @property
    def enough(self) -> bool:
        return self.limit >= self.need

    def describe(self) -> str:
        raised = "" if self.raised_from is None else f" (raised from {self.raised_from} to the hard limit)"
        return f"open-files limit {self.limit}{raised}; {self.servers} server(s) need about {self.need}"

    def problem(self) -> str | None:
        """Why the limit is too low, what that does and how to raise it; None when it is enough."""
        if self.enough:
            return None
        return (
            f"the open-files limit (RLIMIT_NOFILE) is {self.limit}, and its hard limit {self.hard} cannot be raised "
            f"by the bot: {self.servers} server(s) need about {self.need}, so health checks run "
            f"{check_slots(self.limit)} at a time (a round may take several health timeouts)"
        )

    @staticmethod
    def fix() -> str:
        return (
            f"raise it: `ulimits: nofile: {{soft: {SUGGESTED}, hard: {SUGGESTED}}}` in docker-compose.yml "
            f"(`docker run --ulimit nofile={SUGGESTED}:{SUGGESTED}`), or `ulimit -n {SUGGESTED}` in the shell "
            "that starts the bot"
        )


def ensure(servers: int) -> OpenFiles:
    """Raise the soft limit to the hard one when it is below what `servers` servers need."""
    soft, hard = _limits()
    target = needed(servers) if hard == UNLIMITED else hard
    if soft >= needed(servers) or target <= soft:
        return OpenFiles(servers, soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, resource.RLIM_INFINITY if hard == UNLIMITED else hard))
    except (ValueError, OSError):  # refused (a hard limit above the kernel's nr_open): keep what we have
        return OpenFiles(servers, soft, hard)
    return OpenFiles(servers, target, hard, raised_from=soft)
