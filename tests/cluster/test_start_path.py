"""The start path on real systemd (issue 12, item 2): what a `unitctl start` writes.

A new unit started with the real CLI on the nspawn cluster: its machine's
agent writes the unit's state once it runs, never a "loaded, inactive" state
just before its StartUnit (a second state write on the start path, which the
waiting client had to wake for, read and drop). Read from etcd's own history
of the unit's state keys (a watch from the revision before the command), not
by sampling; the unit is checked active in systemd inside its machine, started
once (one InvocationID), and on one machine only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.helpers import service, unitctl, units_json, wait, where_active, write_unit
from unitctl.model import UnitState
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.gateway import GatewayKV
from unitctl.registry.registry import Registry
from unitctl_testing.cluster import Cluster


@pytest.fixture(autouse=True)
def clean(cluster: Cluster) -> Iterator[None]:
    yield
    names = [u["unit"] for u in units_json(cluster)]
    if names:
        unitctl(cluster, "destroy", *names, check=False)
    wait(lambda: not units_json(cluster), timeout=20, what="units destroyed")


async def _registry(c: Cluster) -> Registry:
    return Registry(await GatewayKV.connect(EtcdConfig(endpoints=(c.endpoint,), timeout=5)))


async def _revision(c: Cluster) -> int:
    reg = await _registry(c)
    try:
        return await reg.revision()
    finally:
        await reg.close()


async def _written_states(c: Cluster, unit: str, since: int) -> list[UnitState]:
    """Every state of ``unit`` written after revision ``since``, in order, up to the
    one stored now (etcd's history, through a watch from ``since + 1``)."""
    reg = await _registry(c)
    try:
        prefix = f"{reg.keys.states()}{unit}/"
        stored, _ = await reg.records(prefix)
        last = max(r.mod_rev for r in stored)
        out: list[UnitState] = []
        async for batch in reg.watch(prefix, since + 1):
            for event in batch:
                rec = reg.keyspace.decode_event(event)
                if rec is not None and isinstance(rec.value, UnitState):
                    out.append(rec.value)
            if any(e.mod_rev >= last for e in batch):
                return out
        raise AssertionError("the state watch ended")
    finally:
        await reg.close()


def test_a_started_unit_is_reported_once_it_runs_not_inactive_first(
        cluster: Cluster, tmp_path: Path) -> None:
    unit = "once.service"
    since = asyncio.run(_revision(cluster))
    out = unitctl(cluster, "start", write_unit(tmp_path, unit, service())).stdout
    assert f"Unit {unit} launched" in out
    running = where_active(cluster, unit)
    assert len(running) == 1, running
    [machine] = running
    invocation = cluster.exec(machine, "systemctl", "show", "-p", "InvocationID", "--value",
                              unit).stdout.strip()
    assert invocation
    written = asyncio.run(asyncio.wait_for(_written_states(cluster, unit, since), 30))
    actives = [s.active for s in written]
    assert actives and actives[-1] == "active", actives
    assert "inactive" not in actives[:actives.index("active")], actives
    assert {s.machine_id for s in written} == {cluster.machine_id(machine)}
    # started once: the same invocation after the wait
    assert cluster.exec(machine, "systemctl", "show", "-p", "InvocationID", "--value",
                        unit).stdout.strip() == invocation
