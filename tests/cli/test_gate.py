"""`poracle-bot gate`: the program and each server's three steps, built from the bot's public key; it needs no
Discord token, reaches no server, never prints the private key. Then the steps as a new user follows them, on
a REAL sshd in front of a REAL pm2: after them doctor confirms the gate, a restart goes through it, and the
same key can no longer run `id`."""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
from pathlib import Path

from bot.gate import program_text, version
from tests.support.cli import cli, cli_env, write_env
from tests.support.gate import World, bot_env
from tests.support.sshd import SshdFactory, generate_key

NEW = "~/bin/poracle-gate.new"
INSTALL = f"mkdir -p ~/bin && cat > {NEW} && test -s {NEW} && chmod 755 {NEW} && mv {NEW} ~/bin/poracle-gate"


def public_key(private: Path) -> str:
    return " ".join(Path(f"{private}.pub").read_text().split()[:2])


def private_key_body(private: Path) -> list[str]:
    return [line for line in private.read_text().splitlines() if not line.startswith("-----")]


async def test_gate_prints_each_servers_steps_with_the_bots_public_key(tmp_path: Path) -> None:
    main_key, own_key = generate_key(tmp_path / "bot_key", "poracle-bot"), generate_key(tmp_path / "own_key", "own")
    write_env(
        tmp_path,
        PORACLE_SSH_KEY_PATH=str(main_key),
        PORACLE_SERVER_1_NAME="Main",
        PORACLE_SERVER_1_HOST="192.0.2.10",  # documentation addresses: printed, never reached
        PORACLE_SERVER_1_API="http://192.0.2.10:3030",
        PORACLE_SERVER_2_NAME="Secondary",
        PORACLE_SERVER_2_HOST="192.0.2.11",
        PORACLE_SERVER_2_API="http://192.0.2.11:3035",
        PORACLE_SERVER_2_SSH_USER="poracleuser",
        PORACLE_SERVER_2_SSH_PORT="2222",
        PORACLE_SERVER_2_SSH_KEY_PATH=str(own_key),
        PORACLE_SERVER_2_ACCESS="gate",
    )
    run = await cli(tmp_path, "gate", timeout=30)
    assert run.code == 0, run
    assert run.err == ""
    blocks = run.out.split("\n\n")
    assert blocks[0] == (
        f"poracle-gate {version()} limits the bot's SSH key to what the bot needs: hello, processes, restart, logs.\n"
        "Install it on each server as the SSH user the bot logs in as; step 1 copies it with your own SSH login."
    )
    assert blocks[1].splitlines() == [
        "Main (root@192.0.2.10, port 22)",
        "  1. Copy the gate there:",
        f"     poracle-bot gate --program | ssh root@192.0.2.10 '{INSTALL}'",
        "  2. In ~/.ssh/authorized_keys there, replace the line of the bot's key (the same key) with this one:",
        f'     restrict,pty,command="~/bin/poracle-gate" {public_key(main_key)} poracle-bot',
        "  3. Here: set PORACLE_SERVER_1_ACCESS=gate (and remove PORACLE_SERVER_1_RESTART_CMD), then run "
        "`poracle-bot doctor`.",
    ]
    assert blocks[2].splitlines() == [
        "Secondary (poracleuser@192.0.2.11, port 2222)",
        "  1. Copy the gate there:",
        f"     poracle-bot gate --program | ssh -p 2222 poracleuser@192.0.2.11 '{INSTALL}'",
        "  2. In ~/.ssh/authorized_keys there, replace the line of the bot's key (the same key) with this one:",
        f'     restrict,pty,command="~/bin/poracle-gate" {public_key(own_key)} own',
        "  3. Here: PORACLE_SERVER_2_ACCESS=gate is set, then run `poracle-bot doctor`.",
    ]
    assert "write `./poracle-bot` for `poracle-bot`; in Docker, `docker compose run --rm -T\nporacle-bot`" in blocks[3]
    assert [line for key in (main_key, own_key) for line in private_key_body(key) if line in run.out] == []


async def test_node_option_names_node_in_the_key_line_and_refuses_what_could_break_it(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "bot_key", "")
    write_env(tmp_path, PORACLE_SSH_KEY_PATH=str(key), PORACLE_SERVER_1_HOST="192.0.2.10",
              PORACLE_SERVER_1_API="http://192.0.2.10:3030")  # fmt: skip
    node = "/home/poracle/.nvm/versions/node/v20.11.0/bin/node"
    run = await cli(tmp_path, "gate", f"--node={node}", timeout=30)
    assert run.code == 0, run
    line = f'restrict,pty,command="{node} ~/bin/poracle-gate" {public_key(key)} poracle-bot'
    assert f"     {line}\n" in run.out
    for bad in ('/usr/bin/node" ssh-rsa AAAA', "/usr/bin/node; id", "node"):
        refused = await cli(tmp_path, "gate", f"--node={bad}", timeout=30)
        assert refused.code == 2, refused
        assert "--node must be an absolute path of letters, digits and _ . @ + / -" in refused.err
        assert refused.out == ""


async def test_the_program_needs_no_configuration(tmp_path: Path) -> None:
    run = await cli(tmp_path, "gate", "--program", timeout=30)  # no .env at all
    assert run.code == 0, run
    assert run.out == program_text()
    assert run.out.startswith("#!/usr/bin/env node\n")


async def test_a_key_it_cannot_read_names_its_variable_and_prints_no_steps(tmp_path: Path) -> None:
    write_env(tmp_path, PORACLE_SSH_KEY_PATH=str(tmp_path / "missing"), PORACLE_SERVER_1_HOST="192.0.2.10",
              PORACLE_SERVER_1_API="http://192.0.2.10:3030")  # fmt: skip
    run = await cli(tmp_path, "gate", timeout=30)
    assert run.code == 2, run
    assert f"  - PORACLE_SSH_KEY_PATH: cannot read SSH key {tmp_path / 'missing'}: No such file or directory" in run.err
    assert run.out == ""


async def test_the_readme_steps_install_the_gate_and_the_key_can_do_nothing_else(
    world: World, sshd_factory: SshdFactory, tmp_path: Path
) -> None:
    home = tmp_path / "home"  # the server's user's home: sshd gives it as HOME, so ~ is there
    home.mkdir()
    server = sshd_factory(force_command=False, extra_env=world.env | {"HOME": str(home)})  # a plain key line
    assert server.run("id").stdout.startswith("uid="), "the plain key must run anything: else this proves nothing"
    env = bot_env(server, tmp_path, world.api)
    del env["PORACLE_SERVER_1_ACCESS"]  # as before the move: command mode
    write_env(tmp_path, **env)
    steps = (await cli(tmp_path, "gate", timeout=30)).out.splitlines()

    # 1. The printed line, pasted into a shell (with the test's isolated ssh options): first where the CLI is
    # not found (a checkout's is ./poracle-bot), which must leave no gate, then with this checkout's CLI.
    copy = steps[steps.index("  1. Copy the gate there:") + 1].strip()
    ssh_options = " ".join(server.ssh_argv("")[1:-2])
    for cli_function, expected in (("return 127", 1), ('python3 -m bot "$@"', 0)):
        shell = f'poracle-bot() {{ {cli_function}; }}; ssh() {{ command ssh {ssh_options} "$@"; }}; {copy}'
        run = functools.partial(subprocess.run, cwd=tmp_path, env=cli_env(), capture_output=True, text=True)
        done = await asyncio.to_thread(run, ["bash", "-c", shell])
        assert done.returncode == expected, done
        if expected:
            assert not (home / "bin" / "poracle-gate").exists()
    assert (home / "bin" / "poracle-gate").read_text() == program_text()
    assert not (home / "bin" / "poracle-gate.new").exists()

    # 2. The printed key line replaces the bot key's line in authorized_keys.
    key_line = steps[steps.index("  2. In ~/.ssh/authorized_keys there, replace the line of the bot's key "
                                 "(the same key) with this one:") + 1].strip()  # fmt: skip
    authorized = server.base_dir / "authorized_keys"
    blob = public_key(server.client_key).split()[1]
    lines = authorized.read_text().splitlines()
    authorized.write_text("".join(f"{key_line if blob in line else line}\n" for line in lines))

    # 3. ACCESS=gate, then doctor.
    write_env(tmp_path, **env, PORACLE_SERVER_1_ACCESS="gate")
    checked = await cli(tmp_path, "doctor")
    assert checked.code == 0, checked
    assert f"[ OK ] Main: poracle-gate {version()} (protocol 1), allows hello, processes, restart, logs" in checked.out

    before = world.running()
    restarted = await cli(tmp_path, "restart", "Main", "--yes")
    after = world.running()
    assert restarted.code == 0, restarted
    out = restarted.out.splitlines()
    assert out[0] == f"Main: ssh {server.user}@127.0.0.1:{server.port} -- poracle-gate 1 restart all"
    assert re.fullmatch(r"Main: restarted \(exit code 0\) in \d+\.\d s", out[1]), out
    for app in (world.alpha, world.beta):
        assert after[world.key(app)] != before[world.key(app)]
        pids = f"pid {before[world.key(app)]} → {after[world.key(app)]}"
        assert f"  restarted {app.name} (id {world.pm_ids[app.name]}): {pids}, online" in out
    assert "  answers its health check: yes" in out

    refused = server.run("id")
    assert refused.returncode == 1, refused
    assert "uid=" not in refused.stdout + refused.stderr
    assert '"error":"bad-syntax"' in refused.stdout
    assert world.log_entries()[-1]["event"] == "refused"
    for run in (checked, restarted):
        world.check_secrets(run.out + run.err)
