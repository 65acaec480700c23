"""Dependency order on real systemd machines (issue 11, items 1 and 2).

* the seed pair (stand-ins of units/mongo.service and units/employees.service:
  same [Unit] order and [X-Fleet] rule, no docker) started together 20 times:
  employees' main process never starts before mongo is active, and stopped
  together: mongo begins to stop only once employees is down;
* across machines: a dependant pinned to one machine with After=+Requires= on a
  unit that runs on another waits (shown by list-units and explain), starts
  once it runs, stops when its machine dies, starts again where it moves;
* a dependency cycle is refused at submit, naming it, nothing stored.

Timestamps are systemd's own records, in monotonic µs (nspawn machines share
the host's kernel, so these compare across machines too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import active_state, unitctl, units_json, wait, write_unit
from unitctl_testing.cluster import Cluster

CLUSTER_KWARGS = {"metadata": [{"hostname": "m1"}, {"hostname": "m2"}, {"hostname": "m3"}]}
ROUNDS = 20

# mongo takes 0.4 s to become active; employees takes 0.4 s to stop: without
# ordering, systemd runs both jobs at once and the timestamps cross.
MONGO = ("[Unit]\nDescription=MongoDB (stand-in)\n\n[Service]\n"
         "ExecStartPre=/bin/sleep 0.4\nExecStart=/bin/sleep infinity\n")
EMPLOYEES = ("[Unit]\nDescription=Employees (stand-in)\nAfter=mongo.service\n\n[Service]\n"
             "ExecStart=/bin/sleep infinity\nExecStop=/bin/sleep 0.4\n\n"
             "[X-Fleet]\nX-ConditionMachineOf=mongo.service\n")


@pytest.fixture(autouse=True)
def clean(cluster: Cluster) -> Iterator[None]:
    yield
    r = unitctl(cluster, "list-unit-files", "--json", "--full", check=False)
    names = [u["unit"] for u in json.loads(r.stdout or "[]")]
    if names:
        unitctl(cluster, "destroy", *names, check=False)
    wait(lambda: not units_json(cluster), timeout=30, what="units destroyed")


def _props(c: Cluster, machine: str, unit: str, *names: str) -> dict[str, int]:
    r = c.exec(machine, "systemctl", "show", unit, *[f"-p{n}" for n in names], timeout=10)
    out = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    return {n: int(out.get(n) or 0) for n in names}


def _machine_of(c: Cluster, unit: str) -> str:
    (m,) = [x for x in c.names if active_state(c, x, unit) not in ("", "inactive")]
    return m


#: systemd's catalog ids: "Stopping <unit>..." and "Stopped <unit>." (job done).
STOPPING = "de5b426a63be47a7b6ac3eaac82e2f6f"
STOPPED = "9d1aaa27d60140bd96365438aad20286"


def _journal_us(c: Cluster, machine: str, since: int, unit: str, message_id: str) -> int:
    """Monotonic µs of pid 1's first ``message_id`` about ``unit`` after ``since``."""
    def found() -> int:
        out = c.exec(machine, "journalctl", "-o", "json", f"MESSAGE_ID={message_id}",
                     f"UNIT={unit}", "_PID=1", timeout=10).stdout
        times = [int(json.loads(line)["__MONOTONIC_TIMESTAMP"]) for line in out.splitlines()
                 if line.startswith("{")]
        return min((t for t in times if t > since), default=0)
    wait(lambda: found() > 0, timeout=10, what=f"journal: {message_id} of {unit}")
    return found()


def _wait_both(c: Cluster, machine: str, state: str, what: str) -> None:
    wait(lambda: all(active_state(c, machine, u) == state
                     for u in ("mongo.service", "employees.service")),
         timeout=20, what=f"{what}: both {state}")


def test_seed_pair_starts_and_stops_in_order(cluster: Cluster, tmp_path: Path) -> None:
    paths = [write_unit(tmp_path, "mongo.service", MONGO),
             write_unit(tmp_path, "employees.service", EMPLOYEES)]
    unitctl(cluster, "load", *paths)
    where = ""
    for i in range(ROUNDS):
        unitctl(cluster, "start", "mongo.service", "employees.service")
        where = where or _machine_of(cluster, "mongo.service")
        _wait_both(cluster, where, "active",
                   f"round {i}")
        mongo = _props(cluster, where, "mongo.service", "ActiveEnterTimestampMonotonic")
        emp = _props(cluster, where, "employees.service", "ExecMainStartTimestampMonotonic")
        assert emp["ExecMainStartTimestampMonotonic"] >= \
            mongo["ActiveEnterTimestampMonotonic"] > 0, f"round {i}: employees started first"
        since = emp["ExecMainStartTimestampMonotonic"]
        unitctl(cluster, "stop", "mongo.service", "employees.service")
        _wait_both(cluster, where, "inactive", f"round {i}")
        # systemd collects a stopped unit nobody references (employees): its
        # timestamps go with it, so the stop order is read from the journal
        stopped = _journal_us(cluster, where, since, "employees.service", STOPPED)
        stopping = _journal_us(cluster, where, since, "mongo.service", STOPPING)
        assert stopping >= stopped > 0, f"round {i}: mongo began to stop first"


def test_dependency_cycle_is_refused_at_submit(cluster: Cluster, tmp_path: Path) -> None:
    a = write_unit(tmp_path, "a.service",
                   "[Unit]\nAfter=b.service\n[Service]\nExecStart=/bin/true\n")
    b = write_unit(tmp_path, "b.service",
                   "[Unit]\nBefore=a.service\nAfter=a.service\n[Service]\nExecStart=/bin/true\n")
    r = unitctl(cluster, "submit", a, b, check=False)
    assert r.returncode != 0
    assert "dependency cycle: a.service -> b.service -> a.service" in r.stderr
    assert "Traceback" not in r.stderr
    assert json.loads(unitctl(cluster, "list-unit-files", "--json").stdout) == []
    unitctl(cluster, "submit", a)  # alone it is fine; then b closes the cycle
    r = unitctl(cluster, "submit", b, check=False)
    assert r.returncode != 0 and "dependency cycle" in r.stderr
    files = json.loads(unitctl(cluster, "list-unit-files", "--json", "--full").stdout)
    assert [u["unit"] for u in files] == ["a.service"]


def _state_row(c: Cluster, unit: str) -> dict[str, str]:
    rows = [u for u in units_json(c) if u["unit"] == unit]
    return rows[0] if rows else {}


def test_cross_machine_after_requires(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    m3 = c.machine_id("m3")
    app = write_unit(tmp_path, "app.service",
                     "[Unit]\nAfter=db.service\nRequires=db.service\n[Service]\n"
                     f"ExecStart=/bin/sleep infinity\n[X-Fleet]\nMachineID={m3}\n")
    db = write_unit(tmp_path, "db.service",
                    "[Unit]\nDescription=db\n[Service]\nExecStartPre=/bin/sleep 0.4\n"
                    "ExecStart=/bin/sleep infinity\n[X-Fleet]\n"
                    "MachineMetadata=hostname=m1\nMachineMetadata=hostname=m2\n")
    unitctl(c, "submit", db)
    unitctl(c, "start", "--no-block", app)
    wait(lambda: "waiting for db.service" in (_state_row(c, "app.service").get("waiting")
                                              or ""), what="app shown waiting")
    explain = unitctl(c, "explain", "app.service").stdout
    assert "Waiting on" in explain and "waiting for db.service" in explain
    assert active_state(c, "m3", "app.service") == "inactive"
    unitctl(c, "start", "db.service")
    wait(lambda: active_state(c, "m3", "app.service") == "active", what="app started")
    where = next(m for m in ("m1", "m2") if active_state(c, m, "db.service") == "active")
    assert _mono(c, "m3", "app.service", "ExecMainStartTimestampMonotonic") >= \
        _mono(c, where, "db.service", "ActiveEnterTimestampMonotonic") > 0
    first = _invocation(c, "m3", "app.service")
    c.kill(where)
    try:
        wait(lambda: active_state(c, "m3", "app.service") == "inactive", timeout=20,
             what="app stopped after its requirement's machine died")
        other = "m2" if where == "m1" else "m1"
        wait(lambda: active_state(c, other, "db.service") == "active", timeout=30,
             what="db moved")
        wait(lambda: active_state(c, "m3", "app.service") == "active", timeout=20,
             what="app started again")
        assert _invocation(c, "m3", "app.service") != first
        assert _mono(c, "m3", "app.service", "ExecMainStartTimestampMonotonic") >= \
            _mono(c, other, "db.service", "ActiveEnterTimestampMonotonic") > 0
    finally:
        c.boot(where)


def _mono(c: Cluster, machine: str, unit: str, prop: str) -> int:
    """A monotonic timestamp (µs): the machines share the host's kernel, and its clock."""
    return _props(c, machine, unit, prop)[prop]


def _invocation(c: Cluster, machine: str, unit: str) -> str:
    r = c.exec(machine, "systemctl", "show", "-p", "InvocationID", "--value", unit, timeout=10)
    return r.stdout.strip()
