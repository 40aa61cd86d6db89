"""Real OpenSSH ``sshd`` on 127.0.0.1 for tests (pytest plugin: ``pytest_plugins = ["tests.support.sshd"]``).

Nothing here is mocked: every server is a real ``/usr/sbin/sshd -D -e`` bound to 127.0.0.1 only, with
its own generated ed25519 host key and an authorized client key, running as the current user.

Fixtures
    ``sshd``               session-scoped shared :class:`SshServer`. Do not stop it in a test.
    ``sshd_factory``       function-scoped :class:`SshdFactory`; servers it starts are stopped at teardown.
    ``wrong_client_key``   ed25519 private key authorized nowhere.

Helpers (import from ``tests.support.sshd``)
    ``start_sshd(...)``, ``free_port()``, ``generate_key(path)``, ``remote_processes(marker)``,
    ``wait_remote_processes_gone(marker)``.

Things that are surprising (read before writing tests):

* **Remote environment.** Commands run as ``$SHELL -c '<command>'`` for the current user on this
  machine, exactly like a real server; sshd sets PATH itself (``UsePAM no``), so ``/etc/profile`` is NOT
  read. We set PATH with ``SetEnv`` to the usual Debian default *plus* the directories holding ``node`` and
  ``pm2`` as seen by the test process (matters with nvm on a laptop; in CI both are in /usr/bin or
  /usr/local/bin anyway). A production server whose pm2 lives under nvm would NOT have it on PATH for
  non-interactive ssh commands - configure restart commands with absolute paths there.
  Debian's bash sources ``~/.bashrc`` for ssh commands even though they are non-interactive; on this dev
  box root's .bashrc runs ``pyenv init`` (~0.17 s) and prepends pyenv/cargo dirs to PATH.
* **Every ssh command costs ~0.3-0.6 s here** (handshake + .bashrc, sourced twice because of the wrapper
  below). A fresh sshd is accepting connections in ~30-50 ms.
* **ForceCommand wrapper.** Each server uses ``ForceCommand <tmp>/session-wrapper`` which just does
  ``exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"`` (or a login shell when no command is given). It exists so
  every process started over ssh carries ``SSH_ORIGINAL_COMMAND`` and ``PORACLE_TEST_SSHD=<id>`` in its
  environment. Why: bash ``exec``s the last simple command, so ``sleep 300 # marker`` runs as a process
  whose cmdline is just ``sleep 300`` - a cmdline-only search would report it "gone" while it still runs.
  :func:`remote_processes` therefore matches the marker in the cmdline *or* in SSH_ORIGINAL_COMMAND, and
  only counts processes carrying the tag (so the local ``ssh ... 'sleep 300 # marker'`` client process,
  whose own cmdline contains the marker, is not counted).
* **Closing an ssh channel does not kill the remote command** (no pty -> no SIGHUP). A ``sleep 300`` keeps
  running after the client disconnects; code that times out a remote command must kill it itself
  (e.g. wrap it in ``timeout``, or request a pty). Use :func:`wait_remote_processes_gone` to assert it.
* Stopping an sshd does not end already-open sessions by itself; :meth:`SshServer.stop` kills the
  listener, its per-connection children and every process tagged with that server's id.
* In this container PID 1 does not reap orphans, so killed processes may linger as zombies; all helpers
  here treat zombies as gone.
* As root, sshd needs the privilege-separation directory ``/run/sshd`` (created here if missing) and
  refuses accounts whose shadow password starts with ``!`` ("account is locked") because of ``UsePAM no``;
  root in Debian images has ``*`` which is fine.
* Only one sftp subsystem (the external ``sftp-server``) is configured, if found.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

HOST = "127.0.0.1"
ENV_TAG = "PORACLE_TEST_SSHD"
STARTUP_TIMEOUT = 10.0
# Debian's compiled-in defaults (sshd uses them when UsePAM is off); we only prepend node/pm2 dirs.
_ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"
_SFTP_SERVER_CANDIDATES = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/sftp-server",
)
_WRAPPER = """#!/bin/sh
# Test-only: keep the original command visible in the environment of every remote process
# (see tests/sshd.py docstring), then run it through the login shell as sshd would.
if [ -n "${SSH_ORIGINAL_COMMAND+set}" ]; then
    exec "${SHELL:-/bin/sh}" -c "$SSH_ORIGINAL_COMMAND"
fi
exec "${SHELL:-/bin/sh}" -l
"""


class SshdStartError(RuntimeError):
    """sshd refused its config or did not come up; the message includes its log."""


def _find_executable(name: str) -> str:
    # /usr/sbin is not on a normal user's PATH, so look there explicitly.
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/sbin"])
    found = shutil.which(name, path=search)
    if found is None:
        raise SshdStartError(f"{name} not found (install openssh-server/openssh-client; .ci/run does)")
    return found


def free_port() -> int:
    """A loopback TCP port with nothing listening right now (for "connection refused" tests too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def generate_key(path: Path, comment: str = "poracle-bot-test") -> Path:
    """Create an unencrypted ed25519 key pair at ``path`` / ``path.pub``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_find_executable("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    return path


def _public_key_line(private_key: Path) -> str:
    """``ssh-ed25519 AAAA...`` (type and base64 only, no comment)."""
    fields = Path(f"{private_key}.pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


# --------------------------------------------------------------------------------------------- /proc


def _read_proc(pid: int, name: str) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:  # vanished, or not ours
        return None


def _is_zombie(pid: int) -> bool:
    stat = _read_proc(pid, "stat")
    if stat is None:
        return True
    # The state letter follows the parenthesised comm, which may itself contain spaces/parens.
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X", b"")


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _environ(pid: int) -> dict[str, str]:
    raw = _read_proc(pid, "environ") or b""
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _tagged_pids(tag: str | None = None) -> list[int]:
    """Live processes started through a test sshd (any, or the one with id ``tag``)."""
    me = os.getpid()
    result = []
    for pid in _all_pids():
        if pid == me or _is_zombie(pid):
            continue
        value = _environ(pid).get(ENV_TAG)
        if value is not None and (tag is None or value == tag):
            result.append(pid)
    return result


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        stat = _read_proc(pid, "stat")
        if stat is None:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def remote_processes(marker: str) -> list[int]:
    """PIDs of live processes started over ssh on a test sshd whose command line or original ssh
    command (``SSH_ORIGINAL_COMMAND``) contains ``marker``. Zombies count as gone."""
    result = []
    for pid in _tagged_pids():
        cmdline = (_read_proc(pid, "cmdline") or b"").replace(b"\0", b" ").decode(errors="replace")
        if marker in cmdline or marker in _environ(pid).get("SSH_ORIGINAL_COMMAND", ""):
            result.append(pid)
    return sorted(result)


def wait_remote_processes_gone(marker: str, timeout: float = 5.0) -> list[int]:
    """Poll :func:`remote_processes` until empty or ``timeout``; returns what is still running."""
    deadline = time.monotonic() + timeout
    while True:
        left = remote_processes(marker)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def _kill(pids: list[int], sig: signal.Signals = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


# ------------------------------------------------------------------------------------------- server


@dataclass
class SshServer:
    """A running sshd on ``host:port`` that accepts ``user`` with ``client_key``."""

    host: str
    port: int
    user: str
    client_key: Path
    host_key: Path  # private host key file; pass to start_sshd(host_key=...) to reuse it
    host_public_key: str  # "ssh-ed25519 AAAA..."
    workdir: Path  # scratch dir for marker files written by remote commands
    log_path: Path
    base_dir: Path
    tag: str  # value of PORACLE_TEST_SSHD in every process started through this server
    process: subprocess.Popen[bytes] = field(repr=False)
    # True when start_sshd made base_dir itself: stop() deletes it, host key included (copy it first).
    remove_base_dir: bool = False

    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_public_key}"

    def write_known_hosts(self, path: Path | None = None) -> Path:
        """Write a known_hosts file trusting only this server; default ``base_dir/known_hosts``."""
        path = path or self.base_dir / "known_hosts"
        path.write_text(self.known_hosts_line() + "\n")
        return path

    def ssh_argv(self, command: str, *, key: Path | None = None, known_hosts: Path | None = None) -> list[str]:
        """argv for the plain OpenSSH client, isolated from ~/.ssh/config, agents and global known_hosts."""
        return [
            _find_executable("ssh"),
            "-F", "/dev/null",
            "-i", str(key or self.client_key),
            "-p", str(self.port),
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts or self.write_known_hosts()}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UpdateHostKeys=no",
            "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR",
            f"{self.user}@{self.host}",
            command,
        ]  # fmt: skip

    def run(
        self, command: str, *, key: Path | None = None, known_hosts: Path | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` with the OpenSSH client (no check); stdin is /dev/null."""
        return subprocess.run(
            self.ssh_argv(command, key=key, known_hosts=known_hosts),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Stop the listener and kill every session/process it started. Idempotent."""
        doomed = _descendants(self.process.pid) if self.running else []
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        # Per-connection sshd children survive the listener; kill them and what they started.
        _kill(doomed + _tagged_pids(self.tag))
        if self.remove_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def trust(path: Path, *servers: SshServer) -> Path:
    """Write a known_hosts file trusting every one of ``servers``: distinct SSH targets for one test."""
    path.write_text("".join(server.known_hosts_line() + "\n" for server in servers))
    return path


class SshdFactory(Protocol):
    def __call__(
        self,
        *,
        port: int | None = None,
        host_key: Path | None = None,
        client_key: Path | None = None,
        authorized_options: str | None = None,
        force_command: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> SshServer: ...


def _ensure_privsep_dir() -> None:
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", exist_ok=True)
        os.chmod("/run/sshd", 0o755)


def _session_path() -> str:
    base = _ROOT_PATH if os.geteuid() == 0 else _USER_PATH
    extra: list[str] = []
    for tool in ("node", "pm2"):
        found = shutil.which(tool)
        if found:
            d = os.path.dirname(found)
            if d not in base.split(":") and d not in extra:
                extra.append(d)
    return ":".join([*extra, base])


def _config_text(
    *,
    port: int,
    base: Path,
    host_key: Path,
    tag: str,
    per_source_penalties: bool,
    force_command: bool,
    extra_env: dict[str, str],
) -> str:
    env = " ".join(f'"{name}={value}"' for name, value in extra_env.items())
    lines = [
        f"Port {port}",
        f"ListenAddress {HOST}",
        f'HostKey "{host_key}"',
        f'AuthorizedKeysFile "{base / "authorized_keys"}"',
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "UsePAM no",
        f'PidFile "{base / "sshd.pid"}"',
        "LogLevel VERBOSE",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "AcceptEnv LANG LC_*",
        f'SetEnv "{ENV_TAG}={tag}" "PATH={_session_path()}" {env}'.rstrip(),
    ]
    if force_command:
        lines.append(f'ForceCommand "{base / "session-wrapper"}"')
    # OpenSSH >= 9.8 penalises sources that fail auth (our wrong-key tests) by refusing connections.
    if per_source_penalties:
        lines.append("PerSourcePenalties no")
    sftp = next((p for p in _SFTP_SERVER_CANDIDATES if os.access(p, os.X_OK)), None)
    if sftp:
        lines.append(f"Subsystem sftp {sftp}")
    return "\n".join(lines) + "\n"


def _check_config(sshd: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sshd, "-t", "-f", str(config)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
    )


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log_path: Path, deadline: float) -> bool:
    """True when our sshd logged that it listens and answers with an SSH banner; False if it exited."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if f"Server listening on {HOST} port {port}" in log_path.read_text(errors="replace"):
            try:
                with socket.create_connection((HOST, port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        s.sendall(b"SSH-2.0-readiness-probe\r\n")  # polite close, less log noise
                        return True
            except OSError:
                pass
        time.sleep(0.02)
    raise SshdStartError(f"sshd on port {port} not ready in {STARTUP_TIMEOUT}s; log:\n{log_path.read_text()}")


def start_sshd(
    *,
    port: int | None = None,
    host_key: Path | None = None,
    client_key: Path | None = None,
    base_dir: Path | None = None,
    authorized_options: str | None = None,
    force_command: bool = True,
    extra_env: dict[str, str] | None = None,
) -> SshServer:
    """Start a real sshd on 127.0.0.1 and wait until it accepts connections.

    port:       fixed port (e.g. a stopped server's, to simulate a changed host key); default: a free one,
                retried on collision.
    host_key:   reuse this private host key file; default: a fresh ed25519 key.
    client_key: private key to authorize (its ``.pub`` must exist); default: a fresh key in base_dir.
    base_dir:   where config, keys, log and workdir go; default: a new temp dir.
    authorized_options: prefix of the key's authorized_keys line, e.g. ``restrict,pty,command="..."``.
    force_command: False drops the ForceCommand wrapper (it would override an authorized_keys command=).
    extra_env:  more variables for every session (sshd ``SetEnv``), e.g. a private PM2_HOME.
    """
    sshd = _find_executable("sshd")
    base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="sshd-"))
    base.mkdir(parents=True, exist_ok=True)
    if host_key is None:
        host_key = generate_key(base / f"host_ed25519_{uuid.uuid4().hex[:8]}", "test-host-key")
    if client_key is None:
        client_key = generate_key(base / "client_ed25519", "test-client-key")
    key_line = Path(f"{client_key}.pub").read_text()
    (base / "authorized_keys").write_text(f"{authorized_options} {key_line}" if authorized_options else key_line)
    wrapper = base / "session-wrapper"
    wrapper.write_text(_WRAPPER)
    wrapper.chmod(0o755)
    workdir = base / "work"
    workdir.mkdir(exist_ok=True)
    _ensure_privsep_dir()

    try:
        return _start(
            sshd,
            base,
            host_key,
            client_key,
            workdir,
            port,
            remove_base_dir=base_dir is None,
            force_command=force_command,
            extra_env=extra_env or {},
        )
    except BaseException:
        if base_dir is None:
            shutil.rmtree(base, ignore_errors=True)
        raise


def _start(
    sshd: str,
    base: Path,
    host_key: Path,
    client_key: Path,
    workdir: Path,
    port: int | None,
    *,
    remove_base_dir: bool,
    force_command: bool,
    extra_env: dict[str, str],
) -> SshServer:
    tag = uuid.uuid4().hex
    config = base / "sshd_config"

    def config_text(port: int, penalties: bool) -> str:
        return _config_text(
            port=port,
            base=base,
            host_key=host_key,
            tag=tag,
            per_source_penalties=penalties,
            force_command=force_command,
            extra_env=extra_env,
        )

    log_path = base / "sshd.log"
    penalties = True
    attempts = 5 if port is None else 1
    last_error = ""
    for _ in range(attempts):
        chosen = port or free_port()
        config.write_text(config_text(chosen, penalties))
        checked = _check_config(sshd, config)
        if checked.returncode != 0 and penalties and "PerSourcePenalties" in checked.stderr:
            penalties = False  # older OpenSSH (< 9.8) does not know the option
            config.write_text(config_text(chosen, False))
            checked = _check_config(sshd, config)
        if checked.returncode != 0:
            raise SshdStartError(f"`sshd -t -f {config}` failed:\n{checked.stderr}{checked.stdout}")

        log_path.write_text("")
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    [sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
                )
            if _wait_ready(proc, chosen, log_path, deadline):
                return SshServer(
                    host=HOST,
                    port=chosen,
                    user=getpass.getuser(),
                    client_key=client_key,
                    host_key=host_key,
                    host_public_key=_public_key_line(host_key),
                    workdir=workdir,
                    log_path=log_path,
                    base_dir=base,
                    tag=tag,
                    process=proc,
                    remove_base_dir=remove_base_dir,
                )
            proc.wait()
            last_error = log_path.read_text(errors="replace")
            # A fixed port may still be held briefly by a server that is shutting down: retry until the
            # deadline. A random port that got taken: pick another one (outer loop).
            if "Address already in use" not in last_error:
                raise SshdStartError(f"sshd exited with {proc.returncode}; log:\n{last_error}")
            if port is None or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    raise SshdStartError(f"sshd could not bind a port after {attempts} attempt(s); log:\n{last_error}")


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One shared sshd for the whole session. Use ``sshd_factory`` if you need to stop/replace one."""
    server = start_sshd(base_dir=tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def sshd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFactory]:
    """Start extra sshds: ``sshd_factory(port=None, host_key=None, client_key=None, ...)``, the options of
    :func:`start_sshd` but base_dir."""
    started: list[SshServer] = []

    def factory(
        *,
        port: int | None = None,
        host_key: Path | None = None,
        client_key: Path | None = None,
        authorized_options: str | None = None,
        force_command: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> SshServer:
        server = start_sshd(
            port=port,
            host_key=host_key,
            client_key=client_key,
            base_dir=tmp_path_factory.mktemp("sshd"),
            authorized_options=authorized_options,
            force_command=force_command,
            extra_env=extra_env,
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def wrong_client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ed25519 private key that no test sshd authorizes."""
    return generate_key(tmp_path_factory.mktemp("wrong-key") / "id_ed25519", "unauthorized-key")


__all__ = [
    "ENV_TAG",
    "HOST",
    "SshServer",
    "SshdFactory",
    "SshdStartError",
    "free_port",
    "generate_key",
    "remote_processes",
    "start_sshd",
    "trust",
    "wait_remote_processes_gone",
]
