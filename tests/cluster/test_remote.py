"""``status``, ``journal`` and ``restart`` of a global unit on real systemd machines that
have no sshd: through the machines' agents (issue 11, item 4), and the exit code of
``status`` for an inactive unit (item 6). The CLI runs on the host, so every machine is
"another machine"."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import REPO, name_of, service, unitctl, units_json, wait, write_unit
from unitctl_testing.cluster import Cluster


@pytest.fixture(autouse=True)
def clean(cluster: Cluster) -> Iterator[None]:
    yield
    names = sorted({u["unit"] for u in units_json(cluster)})
    if names:
        unitctl(cluster, "destroy", *names, check=False)
    wait(lambda: not units_json(cluster), timeout=20, what="units destroyed")


def _machine_of(c: Cluster, unit: str) -> str:
    (row,) = [u for u in units_json(c) if u["unit"] == unit]
    return name_of(c, row["machine"].split("/")[0])


def _invocation(c: Cluster, machine: str, unit: str) -> str:
    return c.exec(machine, "systemctl", "show", "-p", "InvocationID", "--value",
                  unit).stdout.strip()


def test_the_machines_have_no_sshd(cluster: Cluster) -> None:
    for m in cluster.names:
        assert cluster.exec(m, "sh", "-c", "command -v sshd || test -e /usr/sbin/sshd",
                            check=False).returncode != 0
        with pytest.raises(OSError), socket.create_connection((cluster.ip(m), 22), timeout=3):
            pass


def test_status_of_a_unit_on_another_machine_and_of_an_inactive_one(
        cluster: Cluster, tmp_path: Path) -> None:
    path = write_unit(tmp_path, "stat.service", service("/bin/sh -c 'echo up; exec sleep 1d'"))
    unitctl(cluster, "start", path)
    where = _machine_of(cluster, "stat.service")
    r = unitctl(cluster, "status", "stat.service")
    expected = cluster.exec(where, "systemctl", "status", "-l", "--no-pager", "stat.service")
    first = expected.stdout.splitlines()[0]  # "● stat.service - test unit"
    assert r.stdout.splitlines()[0] == first and "Active: active (running)" in r.stdout
    # the old path (OpenSSH) is what fails on these machines: it stays behind --ssh
    old = unitctl(cluster, "--no-strict-host-key-checking", "status", "--ssh",
                  "stat.service", check=False)
    assert old.returncode == 10 and "port 22" in old.stderr

    inactive = write_unit(tmp_path, "idle.service", service())
    unitctl(cluster, "load", inactive)
    r = unitctl(cluster, "status", "idle.service", check=False)
    assert r.returncode == 11, r.stderr  # systemctl's 3; unitctl's 3 is "not found"
    assert "Active: inactive (dead)" in r.stdout
    assert unitctl(cluster, "status", "nope.service", check=False).returncode == 3


def test_journal_lines_and_follow(cluster: Cluster, tmp_path: Path) -> None:
    body = service("/bin/sh -c 'sleep 1; for i in 1 2 3 4 5; do echo line-$i; done; "
                   "rm -f /run/poke; mkfifo /run/poke; "
                   "while true; do read l < /run/poke; echo \"got $l\"; done'")
    unitctl(cluster, "start", write_unit(tmp_path, "talk.service", body))
    where = _machine_of(cluster, "talk.service")
    wait(lambda: "line-5" in cluster.journal(where, "-u", "talk.service", "-o", "cat"),
         what="the unit logged")
    r = unitctl(cluster, "journal", "-n", "3", "-o", "cat", "talk.service")
    assert r.stdout.split() == ["line-3", "line-4", "line-5"]

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    follow = subprocess.Popen(
        [sys.executable, "-m", "unitctl", "--endpoint", cluster.endpoint, "journal", "-f",
         "-n", "1", "-o", "cat", "talk.service"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO), env=env)
    try:
        assert _read_line(follow) == b"line-5\n"
        wait(lambda: _journalctl_runs(cluster, where), what="the agent runs journalctl -f")
        cluster.exec(where, "sh", "-c", "echo after-start > /run/poke")
        assert _read_line(follow) == b"got after-start\n"
        follow.send_signal(signal.SIGINT)
        assert follow.wait(timeout=15) == 130
    finally:
        if follow.poll() is None:
            follow.send_signal(signal.SIGINT)
            try:
                follow.wait(timeout=10)
            except subprocess.TimeoutExpired:
                follow.kill()
                follow.wait()
    # the request went with the client's lease: the agent stopped journalctl
    wait(lambda: not _journalctl_runs(cluster, where), timeout=10,
         what="journalctl -f stopped on the machine")


def _read_line(proc: subprocess.Popen[bytes], timeout: float = 30) -> bytes:
    """One line of ``proc``'s stdout, or an AssertionError after ``timeout`` seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no line within {timeout}s (got {line!r})")
        byte = os.read(fd, 1)
        if not byte:
            err = proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"stdout ended (got {line!r}): {err!r}")
        line += byte
    return line


def _journalctl_runs(c: Cluster, machine: str) -> bool:
    """A ``journalctl -f`` runs in the machine (the agent's, in its transient unit)."""
    return c.exec(machine, "pgrep", "-f", "journalctl .*-f --unit=talk", check=False
                  ).returncode == 0


def test_restart_of_a_global_unit_restarts_it_on_every_machine(
        cluster: Cluster, tmp_path: Path) -> None:
    path = write_unit(tmp_path, "everywhere.service", service(xfleet="Global=true"))
    unitctl(cluster, "start", path)
    wait(lambda: len([u for u in units_json(cluster) if u["active"] == "active"]) == 3,
         what="the global unit active on every machine")
    before = {m: _invocation(cluster, m, "everywhere.service") for m in cluster.names}
    assert all(before.values())
    r = unitctl(cluster, "restart", "everywhere.service")
    lines = sorted(r.stdout.splitlines())
    assert lines == sorted(f"Restarted global unit everywhere.service on {cluster.machine_id(m)}"
                           for m in cluster.names)
    after = {m: _invocation(cluster, m, "everywhere.service") for m in cluster.names}
    for m in cluster.names:
        assert after[m] and after[m] != before[m], m
        assert cluster.exec(m, "systemctl", "is-active", "everywhere.service").stdout.strip() \
            == "active"
