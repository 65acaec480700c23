"""fleet semantics on real systemd machines (issue 11 items 3 and 5).

* A template whose ``[X-Fleet]`` uses ``%i`` (``MachineMetadata=hostname=%i``) is
  submitted, and its instance lands on the machine it names; an instance that
  breaks a rule is refused by name and nothing is stored for it.
* A circular ``Replaces=`` is refused at submit; a pair written straight into
  etcd (past the client) runs exactly one unit, the first name, read from
  systemd's own ActiveState and InvocationID in every machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import active_state, service, unitctl, wait, where_active, write_unit
from unitctl.client.connect import config_from_params, open_registry
from unitctl.model import DesiredState, UnitRecord
from unitctl.unitfile import UnitFile
from unitctl_testing.cluster import Cluster

CLUSTER_KWARGS = {"metadata": [{"hostname": "m1"}, {"hostname": "m2"}, {"hostname": "m3"}]}


def _stored(c: Cluster) -> list[str]:
    out = unitctl(c, "list-unit-files", "--fields", "unit", "--no-legend").stdout
    return out.split()


@pytest.fixture(autouse=True)
def clean(cluster: Cluster) -> Iterator[None]:
    yield
    names = _stored(cluster)
    if names:
        unitctl(cluster, "destroy", *names, check=False)
    wait(lambda: not _stored(cluster), timeout=20, what="units destroyed")


def test_template_instance_lands_on_the_machine_its_name_gives(cluster: Cluster,
                                                               tmp_path: Path) -> None:
    """Submitting the template was refused ("MachineMetadata 'hostname=' is not of
    the form key=value"); fleet accepts it and checks each instance."""
    host = cluster.exec("m2", "hostname").stdout.strip()
    tmpl = write_unit(tmp_path, "metadata@.service",
                      service(xfleet="MachineMetadata=hostname=%i"))
    unitctl(cluster, "submit", tmpl)
    unitctl(cluster, "start", f"metadata@{host}.service")  # from the stored template
    assert {m: active_state(cluster, m, f"metadata@{host}.service") for m in cluster.names} \
        == {"m1": "inactive", "m2": "active", "m3": "inactive"}


def test_an_instance_that_breaks_a_rule_is_refused_by_name(cluster: Cluster,
                                                           tmp_path: Path) -> None:
    unitctl(cluster, "submit", write_unit(tmp_path, "pin@.service", service(
        xfleet="MachineID=%i")))
    r = unitctl(cluster, "start", "pin@nothex.service", check=False)
    assert r.returncode == 2
    assert "pin@nothex.service: MachineID 'nothex' is not a machine id" in r.stderr, r.stderr
    assert _stored(cluster) == ["pin@.service"]
    short = cluster.machine_id("m3")[:8]
    unitctl(cluster, "start", f"pin@{short}.service")
    assert where_active(cluster, f"pin@{short}.service") == {"m3"}


def test_circular_replaces_is_refused_at_submit(cluster: Cluster, tmp_path: Path) -> None:
    a = write_unit(tmp_path, "ra.service", service(xfleet="Replaces=rb.service"))
    b = write_unit(tmp_path, "rb.service", service(xfleet="Replaces=r[a-z].service"))
    r = unitctl(cluster, "start", a, b, check=False)
    assert r.returncode == 2
    assert "circular Replaces: ra.service -> rb.service -> ra.service" in r.stderr, r.stderr
    assert _stored(cluster) == []
    unitctl(cluster, "start", b)  # alone it is fine; closing the cycle later is not
    r = unitctl(cluster, "start", a, check=False)
    assert r.returncode == 2 and "circular Replaces" in r.stderr, r.stderr
    assert _stored(cluster) == ["rb.service"]


async def _write_past_the_client(c: Cluster, units: dict[str, str]) -> None:
    registry = await open_registry(config_from_params({"endpoint": c.endpoint}))
    try:  # one transaction: no round can see one unit without the other
        parsed = {name: UnitFile.parse(text) for name, text in units.items()}
        assert all(await registry.create_units([
            (UnitRecord(name, unit.hash(), DesiredState.LAUNCHED), unit.serialize())
            for name, unit in parsed.items()]))
    finally:
        await registry.close()


def test_a_replace_cycle_written_past_the_client_runs_exactly_one(cluster: Cluster) -> None:
    """fleet (and unitctl before) ran both, on different machines."""
    asyncio.run(_write_past_the_client(cluster, {
        "zb.service": service(xfleet="Replaces=za.service"),
        "za.service": service(xfleet="Replaces=z?.service"),
    }))
    wait(lambda: len(where_active(cluster, "za.service")) == 1, timeout=30, what="za runs")
    # the engine's record of its decision for zb, then systemd's records of zb
    wait(lambda: "circular Replaces" in unitctl(cluster, "explain", "zb.service",
                                                check=False).stdout,
         timeout=30, what="zb held")
    explained = unitctl(cluster, "explain", "zb.service", check=False).stdout
    assert "only za.service, the first name of the cycle, is scheduled" in explained
    for m in cluster.names:
        assert active_state(cluster, m, "zb.service") != "active"
        never = cluster.exec(m, "systemctl", "show", "-p", "InvocationID", "--value",
                             "zb.service", check=False).stdout.strip()
        assert never == "", f"zb.service was started on {m}"
    assert len(where_active(cluster, "za.service")) == 1
