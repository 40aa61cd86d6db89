#!/bin/sh
# Runs `poracle-bot "$@"` as the unprivileged user `poracle`.
#
# SSH keys are mounted read-only as they are on the host, typically owned by root with mode 0600: a non-root
# process cannot read them. So, as root, copy each key the environment names (PORACLE_SSH_KEY_PATH and every
# PORACLE_SERVER_<N>_SSH_KEY_PATH) to a private file in memory (/dev/shm) owned by `poracle`, mode 0600,
# point the variable at the copy, then drop every privilege with setpriv (util-linux).
set -eu

app_user=poracle
key="${PORACLE_SSH_KEY_PATH:-/app/ssh_key}"
data="${PORACLE_DATA_DIR:-/app/data}"

if [ "$(id -u)" -ne 0 ]; then
    # Started as another user (compose `user:`): nothing to prepare, the keys must be readable as they are.
    exec poracle-bot "$@"
fi

private=""
# Sets $copy to the private copy of key file $1, made on first use: a key several variables name is copied once.
copy_key() {
    if [ -z "$private" ]; then
        private="$(mktemp -d /dev/shm/poracle-bot.XXXXXX 2>/dev/null || mktemp -d)"
        chown "$app_user:$app_user" "$private"
    fi
    copy="$private/$(basename "$1").$(printf '%s' "$1" | sha256sum | cut -c1-8)"
    [ -f "$copy" ] || install -m 0600 -o "$app_user" -g "$app_user" "$1" "$copy"
}

if [ -f "$key" ]; then
    copy_key "$key"
    export PORACLE_SSH_KEY_PATH="$copy"
fi
for name in $(env | sed -n 's/^\(PORACLE_SERVER_[0-9]*_SSH_KEY_PATH\)=.*/\1/p'); do
    eval "server_key=\${$name:-}"
    if [ -f "$server_key" ]; then
        copy_key "$server_key"
        export "$name=$copy"
    fi
done
# A ./data bind mount starts out owned by root; the bot keeps known_hosts, its database and heartbeat there.
mkdir -p "$data"
chown -R "$app_user:$app_user" "$data"

exec setpriv --reuid="$app_user" --regid="$app_user" --init-groups --inh-caps=-all --bounding-set=-all \
    poracle-bot "$@"
