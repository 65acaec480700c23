"""Volume records and the engine, over the real Agent and Engine (fake systemd), on the
in-memory store and on a real etcd: a recorded volume keeps its unit on its machine,
the unit waits for that machine when it is lost, and removing the record lets it move;
a shared volume's record pins nothing, and its unit moves among the machines of its store.

The fake agents make no volumes (no executor sink), so the record is written here
as an agent would write it; the real agent's part is tests/cluster/test_volumes.py.
"""

from __future__ import annotations

from tests.conftest import KVFactory
from tests.integration.test_engine_sim import run_sim, submit
from unitctl.registry.registry import Registry
from unitctl.volumes import VolumeRecord
from unitctl_testing.inprocess import InProcessCluster, eventually

DB = "[Service]\nExecStart=/bin/sleep infinity\n[X-Fleet]\nVolume=pg:1G:/data\n"


async def _placed(reg: Registry) -> str | None:
    return (await reg.placements_with_revs())[0].get("db.service")


async def _explained(reg: Registry, text: str) -> bool:
    reasons = (await reg.list_explanations()).get("db.service", {})
    return bool(reasons) and all(r == text for r in reasons.values())


def test_a_recorded_volume_keeps_its_unit_until_the_record_is_removed(
        make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await submit(reg, "db.service", DB)
        await eventually(lambda: _placed(reg))
        host = await _placed(reg)
        assert host is not None
        assert await reg.volumes.create(VolumeRecord("pg", host, "/v/pg", 2**30, "db.service"))
        await sim.kill(host)
        reason = f"waits for machine {host}: its volume pg lives there (data stays behind)"
        await eventually(lambda: _explained(reg, reason), timeout=20)
        assert await _placed(reg) is None
        assert await reg.volumes.remove("pg")
        await eventually(lambda: _placed(reg))
        assert await _placed(reg) != host
    run_sim(make_kv, key_prefix, 3, body)


SHARED = "[Service]\nExecStart=/bin/sleep infinity\n[X-Fleet]\nVolume=pg:1G:/data:shared=nfs1\n"
STORE = {"storage.nfs1": "/mnt/nfs1"}
M3 = f"{3:08x}" + "0" * 24


def test_a_shared_volume_moves_with_its_unit_among_the_machines_of_its_store(
        make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await submit(reg, "db.service", SHARED)
        await eventually(lambda: _placed(reg))
        host = await _placed(reg)
        assert host is not None and host != M3
        record = VolumeRecord("pg", "", "/mnt/nfs1/unitctl-volumes/pg", 2**30, "db.service",
                              "nfs1")
        assert await reg.volumes.create(record)
        await sim.kill(host)

        async def moved() -> bool:
            return await _placed(reg) not in (None, host)
        await eventually(moved, timeout=20)
        assert await _placed(reg) != M3
        assert (await reg.volumes.all()) == {"pg": record}
    run_sim(make_kv, key_prefix, 3, body, metadata=[STORE, STORE, {}])
