#!/bin/sh
# Runs `poracle-bot "$@"` as the unprivileged user `poracle`.
#
# The SSH key is mounted read-only as it is on the host, typically owned by root with mode 0600: a non-root
# process cannot read it. So, as root, copy it to a private file in memory (/dev/shm) owned by `poracle`,
# mode 0600, point PORACLE_SSH_KEY_PATH at the copy, then drop every privilege with setpriv (util-linux).
set -eu

app_user=poracle
key="${PORACLE_SSH_KEY_PATH:-/app/ssh_key}"
data="${PORACLE_DATA_DIR:-/app/data}"

if [ "$(id -u)" -ne 0 ]; then
    # Started as another user (compose `user:`): nothing to prepare, the key must be readable as it is.
    exec poracle-bot "$@"
fi

if [ -f "$key" ]; then
    private="$(mktemp -d /dev/shm/poracle-bot.XXXXXX 2>/dev/null || mktemp -d)"
    install -m 0600 -o "$app_user" -g "$app_user" "$key" "$private/ssh_key"
    chown "$app_user:$app_user" "$private"
    export PORACLE_SSH_KEY_PATH="$private/ssh_key"
fi
# A ./data bind mount starts out owned by root; the bot keeps known_hosts, its database and heartbeat there.
mkdir -p "$data"
chown -R "$app_user:$app_user" "$data"

exec setpriv --reuid="$app_user" --regid="$app_user" --init-groups --inh-caps=-all --bounding-set=-all \
    poracle-bot "$@"
