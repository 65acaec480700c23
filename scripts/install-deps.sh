#!/usr/bin/env bash
# Install everything unitctl's tests need on a fresh Debian 12 (root), idempotently:
# Debian packages (etcd, nspawn, debootstrap, docker; shellcheck, systemd-analyze
# and busctl from systemd, dbus-daemon from dbus: under UNITCTL_REQUIRE_REAL=1 a
# missing one fails its tests) and a virtualenv with the package and its test
# extra; chromium and chromium-driver for the dashboard's browser tests.
# Prints what it does; exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(etcd-server etcd-client systemd systemd-container dbus debootstrap zstd iproute2
      iptables openssh-client openssl shellcheck python3-venv ca-certificates
      chromium chromium-driver)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  # Keep package postinst scripts from starting services (etcd on 2379, docker).
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${UNITCTL_PYTHON:-python3}
VENV=${UNITCTL_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "install-deps: creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e ".[test,api,browser,grpc]"
echo "install-deps: ok ($("$VENV/bin/python" --version), etcd $(etcd --version | head -1 | awk '{print $3}'))"
