"""fleet's functional suite, re-done against unitctl on real systemd machines.

One module-scoped cluster of 3 nspawn machines (agent TTL 3 s); every test
destroys what it started.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import (
    active_state,
    service,
    unitctl,
    units_json,
    wait,
    where_active,
    write_unit,
)
from unitctl_testing.cluster import Cluster

CLUSTER_KWARGS = {"metadata": [{"region": "eu", "hostname": "m1"},
                               {"region": "us", "hostname": "m2"},
                               {"region": "eu", "hostname": "m3"}]}


@pytest.fixture(autouse=True)
def clean(cluster: Cluster) -> Iterator[None]:
    yield
    names = [u["unit"] for u in _unit_files(cluster)]
    if names:
        unitctl(cluster, "destroy", *names, check=False)
    wait(lambda: not units_json(cluster), timeout=20, what="units destroyed")


def _unit_files(c: Cluster) -> list[dict[str, str]]:
    import json
    r = unitctl(c, "list-unit-files", "--json", "--full")
    data: list[dict[str, str]] = json.loads(r.stdout)
    return data


def _on(c: Cluster, unit: str) -> list[str]:
    return [u["machine"].split("/")[0] for u in units_json(c) if u["unit"] == unit]


def test_unit_flow_load_start_stop_unload(cluster: Cluster, tmp_path: Path) -> None:
    path = write_unit(tmp_path, "flow.service", service())
    unitctl(cluster, "load", path)
    (row,) = [u for u in units_json(cluster) if u["unit"] == "flow.service"]
    assert (row["active"], row["sub"]) == ("inactive", "dead")
    assert "loaded" in unitctl(cluster, "list-units", "--fields", "unit,load").stdout
    unitctl(cluster, "start", "flow.service")
    (where,) = where_active(cluster, "flow.service")
    (row,) = units_json(cluster)
    assert (row["active"], row["sub"]) == ("active", "running")
    unitctl(cluster, "stop", "flow.service")
    assert active_state(cluster, where, "flow.service") == "inactive"
    unitctl(cluster, "unload", "flow.service")
    wait(lambda: cluster.exec(where, "test", "-e", "/run/unitctl/units/flow.service",
                              check=False).returncode != 0, what="file removed")
    assert units_json(cluster) == []


def test_template_instances_cycle_and_replace(cluster: Cluster, tmp_path: Path) -> None:
    write_unit(tmp_path, "hello@.service", service("/bin/sh -c 'echo hello %i; sleep 1000'"))
    names = [str(tmp_path / f"hello@{i}.service") for i in range(1, 7)]
    for _ in range(2):  # submit/load/start/destroy cycles
        unitctl(cluster, "start", *names)
        running = {u["unit"] for u in units_json(cluster) if u["active"] == "active"}
        assert running == {f"hello@{i}.service" for i in range(1, 7)}
        counts = sorted(len([n for n in running if _on(cluster, n) == [m]])
                        for m in {x for n in running for x in _on(cluster, n)})
        assert counts == [2, 2, 2]  # least loaded
        unitctl(cluster, "destroy", *[f"hello@{i}.service" for i in range(1, 7)])
        wait(lambda: units_json(cluster) == [], what="instances gone")
    # --replace swaps the body; the agent reloads the unit
    one = write_unit(tmp_path, "rep.service", service("/bin/sleep 1001"))
    unitctl(cluster, "start", one)
    write_unit(tmp_path, "rep.service", service("/bin/sleep 1002"))
    r = unitctl(cluster, "start", one)
    assert "differs" in r.stdout + r.stderr
    unitctl(cluster, "start", "--replace", one)
    (m,) = where_active(cluster, "rep.service")
    wait(lambda: "1002" in cluster.exec(m, "systemctl", "show", "-p", "ExecStart", "--value",
                                        "rep.service").stdout, what="new body active")
    unitctl(cluster, "restart", "rep.service")
    assert where_active(cluster, "rep.service") == {m}


def test_machine_of_pair(cluster: Cluster, tmp_path: Path) -> None:
    ping = write_unit(tmp_path, "ping.service", service())
    pong = write_unit(tmp_path, "pong.service", service(xfleet="MachineOf=ping.service"))
    unitctl(cluster, "start", ping, pong)
    assert where_active(cluster, "ping.service") == where_active(cluster, "pong.service")
    assert len(where_active(cluster, "pong.service")) == 1


def test_conflicts_five_on_three(cluster: Cluster, tmp_path: Path) -> None:
    write_unit(tmp_path, "lb@.service", service(xfleet="Conflicts=lb@*.service"))
    names = [str(tmp_path / f"lb@{i}.service") for i in range(1, 6)]
    unitctl(cluster, "start", "--no-block", *names)
    wait(lambda: len([u for u in units_json(cluster) if u["active"] == "active"]) == 3,
         what="3 active")
    rows = [u for u in units_json(cluster) if u["active"] == "active"]
    assert len({r["machine"] for r in rows}) == 3
    r = unitctl(cluster, "list-unit-files", "--fields", "unit,state,reason")
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("lb@")]
    assert len(lines) == 5
    assert sum("Conflicts=lb@*.service" in ln for ln in lines) == 2


def test_one_way_conflict(cluster: Cluster, tmp_path: Path) -> None:
    a = write_unit(tmp_path, "a.service", service(xfleet="Conflicts=b.service"))
    b = write_unit(tmp_path, "b.service", service())
    unitctl(cluster, "start", a, b)
    assert where_active(cluster, "a.service").isdisjoint(where_active(cluster, "b.service"))


def test_global_units_and_global_conflicts(cluster: Cluster, tmp_path: Path) -> None:
    g = write_unit(tmp_path, "global.service", service(xfleet="Global=true"))
    eu = write_unit(tmp_path, "eu.service",
                    service(xfleet="Global=true\nMachineMetadata=region=eu"))
    c1 = write_unit(tmp_path, "gc1.service", service(xfleet="Global=true\nConflicts=gc*"))
    c2 = write_unit(tmp_path, "gc2.service", service(xfleet="Global=true\nConflicts=gc*"))
    unitctl(cluster, "start", g, eu, c1, c2)
    wait(lambda: where_active(cluster, "global.service") == set(cluster.names)
         and where_active(cluster, "eu.service") == {"m1", "m3"}
         and where_active(cluster, "gc1.service") == set(cluster.names),
         what="globals placed")
    assert where_active(cluster, "gc2.service") == set()  # alphabetical winner: gc1


def test_machine_id_pinning(cluster: Cluster, tmp_path: Path) -> None:
    short = cluster.machine_id("m2")[:8]
    p = write_unit(tmp_path, "pinned.service", service(xfleet=f"MachineID={short}"))
    unitctl(cluster, "start", p)
    assert where_active(cluster, "pinned.service") == {"m2"}


def test_metadata_with_instance_specifier(cluster: Cluster, tmp_path: Path) -> None:
    write_unit(tmp_path, "metadata@.service", service(xfleet="MachineMetadata=hostname=%i"))
    unitctl(cluster, "start", str(tmp_path / "metadata@m3.service"))
    assert where_active(cluster, "metadata@m3.service") == {"m3"}
    r = unitctl(cluster, "start", "--block-attempts", "2", str(tmp_path / "metadata@nope.service"),
                check=False)
    assert r.returncode == 7 and "hostname" in r.stderr + r.stdout


def test_replaces_moves_the_replaced_unit(cluster: Cluster, tmp_path: Path) -> None:
    old = write_unit(tmp_path, "old.service", service(xfleet="MachineMetadata=region=eu"))
    unitctl(cluster, "start", old)
    (where,) = where_active(cluster, "old.service")
    other_eu = ({"m1", "m3"} - {where}).pop()
    # new.service goes where old.service runs and replaces it there
    new = write_unit(tmp_path, "new.service", service(
        xfleet=f"Replaces=old.service\nMachineMetadata=hostname={where}"))
    unitctl(cluster, "start", new)
    wait(lambda: where_active(cluster, "new.service") == {where}
         and where_active(cluster, "old.service") == {other_eu}, what="replaced")


def test_install_section_is_enabled_runtime(cluster: Cluster, tmp_path: Path) -> None:
    inst = write_unit(tmp_path, "wanted.service",
                      service() + "[Install]\nWantedBy=multi-user.target\n")
    side = write_unit(tmp_path, "side.service", service(
        xfleet="MachineOf=wanted.service", extra="BindsTo=wanted.service\nAfter=wanted.service"))
    unitctl(cluster, "start", inst, side)
    (m,) = where_active(cluster, "wanted.service")
    wants = "/run/systemd/system/multi-user.target.wants/wanted.service"
    assert cluster.exec(m, "test", "-L", wants).returncode == 0
    assert where_active(cluster, "side.service") == {m}
    # BindsTo: systemd stops the sidekick when its target stops
    unitctl(cluster, "stop", "wanted.service")
    wait(lambda: active_state(cluster, m, "side.service") == "inactive", what="bound stop")


def test_mongo_and_employees_seed_pair(cluster: Cluster, tmp_path: Path) -> None:
    mongo = write_unit(tmp_path, "mongo.service", service())
    emp = write_unit(tmp_path, "employees.service", service(
        extra="After=mongo.service", xfleet="X-ConditionMachineOf=mongo.service"))
    unitctl(cluster, "start", mongo, emp)
    assert where_active(cluster, "mongo.service") == where_active(cluster, "employees.service")
