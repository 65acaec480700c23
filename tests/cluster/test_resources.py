"""Resource-aware placement and host ports on real systemd machines.

One module-scoped cluster of 3 nspawn machines. Each agent reports its
capacity (the memory systemd sees in its machine); units declare needs, fixed
and dynamic host ports; systemd's own records in the machines are read back
(``systemctl show -p Environment``, ``InvocationID``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import service, unitctl, units_json, wait, where_active, write_unit
from unitctl.resources import parse_size
from unitctl_testing.cluster import Cluster

DROPIN = "/run/systemd/system/{unit}.d/50-unitctl-ports.conf"


@pytest.fixture(autouse=True)
def clean(cluster: Cluster) -> Iterator[None]:
    yield
    r = unitctl(cluster, "list-unit-files", "--json", "--full")
    names = [u["unit"] for u in json.loads(r.stdout)]
    if names:
        unitctl(cluster, "destroy", *names, check=False)
    wait(lambda: not units_json(cluster), timeout=30, what="units destroyed")


def machines(c: Cluster, fields: str) -> list[dict[str, str]]:
    r = unitctl(c, "list-machines", "--json", "--fields", f"machine,{fields}")
    rows: list[dict[str, str]] = json.loads(r.stdout)
    return rows


def show(c: Cluster, machine: str, prop: str, unit: str) -> str:
    return c.exec(machine, "systemctl", "show", "-p", prop, "--value", unit,
                  timeout=10).stdout.strip()


def test_placement_refuses_machines_without_the_memory(cluster: Cluster, tmp_path: Path) -> None:
    rows = machines(cluster, "mem")
    assert len(rows) == 3 and all(r["mem"] for r in rows), rows
    # "23.4 GiB" -> bytes; a need of 55% of the smallest fits once per machine
    smallest = min(parse_size(r["mem"].replace(" ", "").replace("iB", "")) or 0 for r in rows)
    need = f"{smallest * 55 // 100 // 2**20}M"
    files = [write_unit(tmp_path, f"big{i}.service",
                        service(xfleet=f"Memory={need}")) for i in range(4)]
    unitctl(cluster, "start", *files[:3], timeout=90)
    assert len(set().union(*(where_active(cluster, f"big{i}.service") for i in range(3)))) == 3
    unitctl(cluster, "start", "--no-block", files[3])

    def refused() -> bool:
        text = unitctl(cluster, "explain", "big3.service").stdout
        return text.count("memory,") == 3 and "free (of" in text

    wait(refused, timeout=20, what="explain names the memory shortfall on every machine")
    text = unitctl(cluster, "explain", "big3.service").stdout
    assert re.search(r"needs [0-9.]+ GiB memory, [0-9.]+ GiB free \(of [0-9.]+ GiB\)", text), text
    assert where_active(cluster, "big3.service") == set()
    allocated = machines(cluster, "mem_alloc")
    assert all(r["mem_alloc"] != "0 B" for r in allocated), allocated


def test_two_units_with_the_same_fixed_host_port_land_on_different_machines(
        cluster: Cluster, tmp_path: Path) -> None:
    # two fillers on each of two machines: by unit count alone both web units
    # would go to the third machine
    first, *others = cluster.names
    fillers = [write_unit(tmp_path, f"filler{i}.service", service(
        xfleet=f"MachineID={cluster.machine_id(others[i // 2])}")) for i in range(4)]
    unitctl(cluster, "start", *fillers, timeout=90)
    files = [write_unit(tmp_path, f"web{i}.service", service(xfleet="Ports=8080"))
             for i in range(2)]
    unitctl(cluster, "start", *files, timeout=90)
    where = [where_active(cluster, f"web{i}.service") for i in range(2)]
    assert all(len(w) == 1 for w in where), where
    assert where[0] != where[1], where
    assert first in where[0] | where[1], where
    held = sorted(r["ports"] for r in machines(cluster, "ports") if r["ports"])
    assert held == ["8080 (web0.service)", "8080 (web1.service)"], held


def _environment(c: Cluster, machine: str, unit: str) -> dict[str, str]:
    pairs = show(c, machine, "Environment", unit).split()
    return dict(p.split("=", 1) for p in pairs)


def test_dynamic_ports_are_allocated_passed_in_stable_and_released(
        cluster: Cluster, tmp_path: Path) -> None:
    path = write_unit(tmp_path, "api.service", service(xfleet="Ports=@PORT @PORT_ADMIN"))
    r = unitctl(cluster, "start", path, timeout=90)
    (machine,) = where_active(cluster, "api.service")
    env = _environment(cluster, machine, "api.service")
    assert set(env) == {"PORT", "PORT_ADMIN"}, env
    ports = {int(env["PORT"]), int(env["PORT_ADMIN"])}
    assert len(ports) == 2 and all(31000 <= p <= 31999 for p in ports), env
    assert f"PORT={env['PORT']}" in r.stdout + r.stderr  # start printed host and ports
    first = show(cluster, machine, "InvocationID", "api.service")
    # a restart keeps the unit on its machine and its ports
    unitctl(cluster, "stop", "api.service", timeout=60)
    unitctl(cluster, "start", "api.service", timeout=60)
    assert where_active(cluster, "api.service") == {machine}
    assert show(cluster, machine, "InvocationID", "api.service") != first
    assert _environment(cluster, machine, "api.service") == env
    # another unit on that machine never gets those ports
    other = write_unit(tmp_path, "api2.service", service(
        xfleet=f"Ports=@PORT\nMachineID={cluster.machine_id(machine)}"))
    unitctl(cluster, "start", other, timeout=90)
    assert int(_environment(cluster, machine, "api2.service")["PORT"]) not in ports
    # destroy releases them: the drop-in goes and the machine lists no such port
    unitctl(cluster, "destroy", "api.service", timeout=60)
    gone = cluster.exec(machine, "test", "-e", DROPIN.format(unit="api.service"), check=False)
    assert gone.returncode != 0
    held = next(row["ports"] for row in machines(cluster, "ports")
                if cluster.machine_id(machine).startswith(row["machine"]))
    assert "api.service" not in (held or ""), held
