#!/usr/bin/env bash
# Idempotent: install Debian's docker-registry (the Docker Distribution registry
# server) for the tests that pull from a local registry. Its service is not
# started: each test starts its own registry on a loopback port with a config in
# a temp dir (tests/integration/registry.py).
#
# Safe to run repeatedly and concurrently (a flock serialises runs).
# Exits non-zero with a one-line message on failure.
set -euo pipefail

LOCK=/tmp/unitctl-setup-registry.lock

die() { echo "setup-registry: error: $*" >&2; exit 1; }
say() { echo "setup-registry: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root"

exec 9>"$LOCK"
flock -w 600 9 || die "another setup-registry.sh holds $LOCK for over 600 s"

if [ ! -x /usr/bin/docker-registry ]; then
    say "installing docker-registry"
    # Keep the package's postinst from starting the registry service on :5000
    # (a policy-rc.d that is already there is left as it is).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends docker-registry \
        >/dev/null 2>&1 || {
        apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null || die "apt-get update failed"
        apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends docker-registry \
            >/dev/null || die "apt-get install docker-registry failed"
    }
fi
[ -x /usr/bin/docker-registry ] || die "/usr/bin/docker-registry not found after install"
