"""The known_hosts file the bot trusts, and the SSH host key policy that uses it."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncssh

from bot.config import HostKeyPolicy

log = logging.getLogger(__name__)


def host_pattern(host: str, port: int) -> str:
    """The known_hosts spelling of a host, as OpenSSH writes it."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: asyncssh.SSHKey) -> str:
    return key.get_fingerprint("sha256")


class KnownHosts:
    """An OpenSSH known_hosts file, read afresh for every connection so edits by hand take effect."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._parsed: tuple[str, asyncssh.SSHKnownHosts] | None = None

    def load(self) -> asyncssh.SSHKnownHosts:
        # An empty value would make asyncssh fall back to ~/.ssh/known_hosts: always pass a parsed object.
        text = self.path.read_text() if self.path.is_file() else ""
        # Parsed again only when the text changed: a thousand servers' lines take ~20 ms to parse, in the event
        # loop, for every connection; reading and comparing them takes well under one.
        if self._parsed is None or self._parsed[0] != text:
            self._parsed = (text, asyncssh.import_known_hosts(text))
        return self._parsed[1]

    def malformed_lines(self) -> list[tuple[int, str]]:
        """(line number, why) of each line asyncssh refuses, which makes the whole file unusable, or skips
        without a word because it cannot read the key, so that the line trusts nothing. OSError or
        UnicodeDecodeError when the file cannot be read as text."""
        text = self.path.read_text() if self.path.is_file() else ""
        bad = []
        for number, line in enumerate(text.splitlines(), 1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            try:
                asyncssh.import_known_hosts(entry)
            except ValueError as exc:
                bad.append((number, str(exc)))
                continue
            key = entry.split(None, 2 if entry.startswith("@") else 1)[-1]
            if not _readable_key(key):
                bad.append((number, f"no host key asyncssh can read: {_preview(key)}"))
        return bad

    def keys_for(self, host: str, port: int) -> list[asyncssh.SSHKey]:
        return _trusted_keys(self.load(), host, port)

    def pin(self, host: str, port: int, key: asyncssh.SSHKey) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = f"{host_pattern(host, port)} {key.export_public_key().decode().strip()}\n"
        with self.path.open("a") as file:
            file.write(line)
        log.info("Pinned host key of %s: %s", host_pattern(host, port), fingerprint(key))

    def unpin(self, host: str, port: int) -> None:
        """Remove every line that trusts a key for this host, hashed or not (a line that also names other
        hosts goes too); comments and other hosts' lines stay as written."""
        lines = self.path.read_text().splitlines(keepends=True) if self.path.is_file() else []
        kept = [line for line in lines if not _trusted_keys(asyncssh.import_known_hosts(line), host, port)]
        self.path.write_text("".join(kept))
        log.info("Unpinned host keys of %s", host_pattern(host, port))


def _readable_key(text: str) -> bool:
    for read in (asyncssh.import_public_key, asyncssh.import_certificate):
        try:
            read(text)
        except asyncssh.KeyImportError:
            continue
        return True
    return False


def _preview(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _trusted_keys(known_hosts: asyncssh.SSHKnownHosts, host: str, port: int) -> list[asyncssh.SSHKey]:
    trusted, *_ = asyncssh.match_known_hosts(known_hosts, host, "", port if port != 22 else None)
    return list(trusted)


class HostKeyChecker(asyncssh.SSHClient):
    """asyncssh calls this only for a key that known_hosts does not already trust."""

    def __init__(self, known_hosts: KnownHosts, policy: HostKeyPolicy, host: str, port: int) -> None:
        self._known_hosts = known_hosts
        self._policy = policy
        self._host = host
        self._port = port
        self.offered_key: asyncssh.SSHKey | None = None
        self.pin_error: OSError | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.offered_key = key
        if self._policy is HostKeyPolicy.ACCEPT_NEW and not self._known_hosts.keys_for(self._host, self._port):
            try:
                self._known_hosts.pin(self._host, self._port, key)
            except OSError as exc:  # a key we could not pin would be trusted afresh every time: refuse it
                self.pin_error = exc
                return False
            return True
        return False
