#!/usr/bin/env bash
# Idempotent: make a working dockerd and the test image unitctl-busybox:test.
#
#   1. install Debian's docker.io if no dockerd binary is present;
#   2. start dockerd in the background if `docker info` fails
#      (log: /var/log/unitctl-dockerd.log), wait up to 60 s until it answers;
#   3. build unitctl-busybox:test by `docker import` of a busybox-static rootfs
#      if the image is missing (no registry is needed).
#
# Safe to run repeatedly and concurrently (a flock serialises runs).
# Exits non-zero with a one-line message on failure.
set -euo pipefail

IMAGE="${UNITCTL_TEST_IMAGE:-unitctl-busybox:test}"
LOG=/var/log/unitctl-dockerd.log
LOCK=/tmp/unitctl-setup-docker.lock

die() { echo "setup-docker: error: $*" >&2; exit 1; }
say() { echo "setup-docker: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root"

exec 9>"$LOCK"
flock -w 600 9 || die "another setup-docker.sh holds $LOCK for over 600 s"

if ! command -v dockerd >/dev/null 2>&1; then
    say "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq docker.io >/dev/null || die "apt-get install docker.io failed"
fi
command -v dockerd >/dev/null 2>&1 || die "dockerd not found after install"

if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (log: $LOG)"
    # setsid + nohup: the daemon must survive this script and its caller.
    # 9>&-: it must not inherit (and so hold forever) this script's flock.
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null 9>&- &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || die "dockerd did not become ready in 60 s (see $LOG)"
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "building $IMAGE from busybox-static"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    (
        cd "$work"
        if ! apt-get download busybox-static >/dev/null 2>&1; then
            apt-get update -qq >/dev/null
            apt-get download busybox-static >/dev/null
        fi
    ) || die "apt-get download busybox-static failed"
    dpkg-deb -x "$work"/busybox-static_*.deb "$work/pkg" || die "dpkg-deb failed"
    mkdir -p "$work/img/bin" "$work/img/tmp" "$work/img/etc"
    cp "$work/pkg/bin/busybox" "$work/img/bin/busybox"
    for tool in sh sleep echo cat ls trap env true false kill ps; do
        ln -sf busybox "$work/img/bin/$tool"
    done
    tar -C "$work/img" -cf "$work/bb.tar" . || die "tar failed"
    docker import -c 'CMD ["/bin/sh"]' "$work/bb.tar" "$IMAGE" >/dev/null \
        || die "docker import failed"
fi
say "ready: dockerd $(docker version --format '{{.Server.Version}}' 2>/dev/null), image $IMAGE"
