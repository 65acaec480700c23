#!/usr/bin/env bash
# Idempotent host setup for the nspawn cluster harness (unitctl_testing).
#
#   1. apt-get install the host packages that are missing (apt-get update first,
#      only when something must be installed). A temporary policy-rc.d keeps the
#      etcd-server package from starting its own etcd on 2379; an etcd that the
#      package started anyway (user "etcd") is stopped.
#   2. build or restore the cached base rootfs (python -m unitctl_testing.rootfs):
#      ~/.cache/unitctl/rootfs-<key>.tar.zst, unpacked next to it.
#
# Prints timings; exits non-zero with a one-line message on failure.
# Env: PYTHON (default python3), UNITCTL_CACHE, UNITCTL_DEBIAN_MIRROR.
set -euo pipefail

PACKAGES=(systemd-container debootstrap etcd-server zstd iproute2 iptables)
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
POLICY=/usr/sbin/policy-rc.d

die() { echo "setup-cluster: error: $*" >&2; exit 1; }
say() { echo "setup-cluster: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, mounts, netns, cgroups)"
T0=$(now)

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

stop_package_etcd() {
    # the package's etcd runs as user etcd; ours (tests) run as root
    local pids
    pids=$(pgrep -u etcd -x etcd 2>/dev/null || true)
    if [ -n "$pids" ]; then
        say "stopping the etcd started by the package (pids: $pids)"
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null || true
    fi
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
    if [ ${#missing[@]} -eq 0 ]; then
        say "packages: all present (${PACKAGES[*]})"
        return
    fi
    local t made_policy=0
    t=$(now)
    say "installing: ${missing[*]}"
    if [ ! -e "$POLICY" ]; then
        printf '#!/bin/sh\n# setup-cluster.sh: no daemons started by package installs\nexit 101\n' >"$POLICY"
        chmod 755 "$POLICY"
        made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -q -o DPkg::Lock::Timeout=300)
    if ! "${apt[@]}" update >/tmp/setup-cluster-apt.log 2>&1 ||
       ! "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >>/tmp/setup-cluster-apt.log 2>&1; then
        [ $made_policy = 1 ] && rm -f "$POLICY"
        tail -20 /tmp/setup-cluster-apt.log >&2
        die "apt-get failed installing ${missing[*]} (log: /tmp/setup-cluster-apt.log)"
    fi
    [ $made_policy = 1 ] && rm -f "$POLICY"
    for p in "${missing[@]}"; do installed "$p" || die "$p is still not installed"; done
    say "timing: apt-get update + install: $(since "$t")s"
}

check_host() {
    local tool
    for tool in systemd-nspawn debootstrap etcd zstd ip iptables nsenter "$PYTHON"; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found after install"
    done
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
        die "kernel has no overlayfs"
    [ -e /sys/fs/cgroup/unified/cgroup.procs ] || [ -e /sys/fs/cgroup/cgroup.procs ] ||
        die "no cgroup2 mounted (expected /sys/fs/cgroup/unified)"
}

install_packages
stop_package_etcd
check_host

t=$(now)
say "rootfs: build or restore (python -m unitctl_testing.rootfs)"
if ! ROOTFS=$(cd "$REPO" && "$PYTHON" -m unitctl_testing.rootfs); then
    die "building/restoring the base rootfs failed (see messages above)"
fi
say "timing: rootfs: $(since "$t")s -> $ROOTFS"
say "timing: total: $(since "$T0")s"
