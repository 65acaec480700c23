"""Machine metadata set through fleet's ``PATCH /fleet/v1/machines`` is what the
scheduler and list-machines see (fleet merged it over the agent's), on a real etcd
with the real Agent and Engine in-process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.integration.apiharness import Api, api_cluster
from unitctl.client.facade import Client
from unitctl.engine.mirror import read_view
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import eventually

pytestmark = pytest.mark.etcd
DB_UNIT = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep infinity"},
           {"section": "X-Fleet", "name": "MachineMetadata", "value": "role=db"}]


def run(etcd: EtcdCluster, prefix: str, body: Callable[[Api], Awaitable[None]]) -> None:
    async def go() -> None:
        async with api_cluster(etcd, prefix, 2, [{"role": "web"}, {"role": "web"}]) as api:
            await body(api)
    asyncio.run(asyncio.wait_for(go(), 60))


def _op(op: str, machine: str, key: str, value: str = "") -> dict[str, object]:
    return {"op": op, "path": f"/{machine}/metadata/{key}", "Value": {"value": value}}


def test_patched_metadata_changes_placement(etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        _, m1 = sorted(api.sim.machines)
        status, _, _ = await api.call("PUT", "/fleet/v1/units/db.service",
                                      body={"desiredState": "launched", "options": DB_UNIT})
        assert status == 201

        async def explained() -> bool:  # no machine has role=db: unplaced, and says why
            return bool((await api.registry.list_explanations()).get("db.service"))
        await eventually(explained)
        assert "db.service" not in await api.registry.list_placements()
        status, _, _ = await api.call("PATCH", "/fleet/v1/machines",
                                      body=[_op("replace", m1, "role", "db")])
        assert status == 204

        async def placed_on_m1() -> bool:
            return (await api.registry.list_placements()).get("db.service") == m1
        await eventually(placed_on_m1)
        await eventually(lambda: api.sim.running().get("db.service") == {m1})
    run(etcd, key_prefix, body)


def test_list_machines_and_engine_view_merge_patched_metadata(
        etcd: EtcdCluster, key_prefix: str) -> None:
    async def body(api: Api) -> None:
        m0, m1 = sorted(api.sim.machines)
        await api.call("PATCH", "/fleet/v1/machines",
                       body=[_op("add", m0, "rack", "r7"), _op("replace", m1, "role", "db")])
        machines = {m.id: m for m in await Client(api.registry).list_machines()}
        assert machines[m0].metadata == {"role": "web", "rack": "r7"}
        assert machines[m1].metadata == {"role": "db"}
        view = await read_view(api.registry)
        assert view.machines[m1].metadata == {"role": "db"}
        await api.call("PATCH", "/fleet/v1/machines", body=[_op("remove", m0, "rack")])
        machines = {m.id: m for m in await Client(api.registry).list_machines()}
        assert machines[m0].metadata == {"role": "web"}
    run(etcd, key_prefix, body)


def test_a_global_unit_runs_where_patched_metadata_matches(etcd: EtcdCluster,
                                                          key_prefix: str) -> None:
    """The engine places a global unit with the API-set metadata; the agent's own check
    must agree (it refused it, checking only its configured metadata)."""
    async def body(api: Api) -> None:
        m0, m1 = sorted(api.sim.machines)
        unit = [*DB_UNIT, {"section": "X-Fleet", "name": "Global", "value": "true"}]
        status, _, _ = await api.call("PUT", "/fleet/v1/units/dbg.service",
                                      body={"desiredState": "launched", "options": unit})
        assert status == 201
        status, _, _ = await api.call("PATCH", "/fleet/v1/machines",
                                      body=[_op("replace", m1, "role", "db")])
        assert status == 204
        await eventually(lambda: api.sim.running().get("dbg.service") == {m1})
        await api.call("PATCH", "/fleet/v1/machines", body=[_op("replace", m0, "role", "db")])
        await eventually(lambda: api.sim.running().get("dbg.service") == {m0, m1})
        await api.call("PATCH", "/fleet/v1/machines", body=[_op("remove", m1, "role")])
        await eventually(lambda: api.sim.running().get("dbg.service") == {m0})
    run(etcd, key_prefix, body)
