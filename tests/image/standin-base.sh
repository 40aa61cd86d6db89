#!/usr/bin/env bash
# A stand-in for the Dockerfile's base image, made from Debian packages, for machines that cannot reach the
# container registry serving the real python:3.12.x-slim-bookworm (this project's CI). It is tagged with the
# Dockerfile's exact FROM reference, so the real Dockerfile builds on it unchanged (tests/image).
#
# What differs from the real base: Python is Debian's python3 (3.11, /usr/bin; the venv has lib/python3.11)
# instead of 3.12 built in /usr/local; and it trusts the CA certificates this machine trusts (its bundle is
# copied in: the package index may be reached through a TLS-intercepting proxy here).
#
# Idempotent: exits at once when the tag exists, because debootstrap takes minutes. Needs root, debootstrap
# and a Docker daemon (.ci/docker-up provides them).
set -euo pipefail

dockerfile="$(dirname "${BASH_SOURCE[0]}")/../../Dockerfile"
tag="$(awk '$1 == "FROM" { print $2; exit }' "$dockerfile")"
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "stand-in base $tag: present"
    exit 0
fi

rootfs="$(mktemp -d /var/tmp/standin-base.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "stand-in base $tag: debootstrap into $rootfs"
# setpriv (util-linux) and useradd (passwd) come with minbase: Debian marks them essential / required.
# python-is-python3: the real base has `python` too.
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

# The real base's PATH and locale; without a PATH, the Dockerfile's `ENV PATH=/venv/bin:$PATH` would lose /usr/bin.
tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$tag"
echo "stand-in base $tag: imported"
