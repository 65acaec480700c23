"""Volume records and the engine, over the real Agent and Engine (fake systemd), on the
in-memory store and on a real etcd: a recorded volume keeps its unit on its machine,
the unit waits for that machine when it is lost, and removing the record lets it move;
a shared volume's record pins nothing, and its unit moves among the machines of its store;
a unit with ``MoveWithoutVolume=yes`` moves when its volume's machine is lost, the new
machine's agent takes the record over, and the unit does not move back when the old
machine returns.

The fake agents make no volumes (no executor sink) unless a test gives them the real
sink (:class:`~unitctl.agent.volumes.LocalVolumes` over temporary directories); else
the record is written here as an agent would write it. The real agent on real systemd
is tests/cluster/test_volumes.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.conftest import KVFactory
from tests.integration.test_engine_sim import run_sim, submit
from unitctl.agent.volumes import LocalVolumes
from unitctl.cli.describe import explain_lines
from unitctl.client.explain import explain
from unitctl.client.views import Bodies
from unitctl.legend import short_id
from unitctl.registry.registry import Registry
from unitctl.volumes import VolumeRecord
from unitctl_testing.inprocess import InProcessCluster, InProcessMachine, eventually

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


MOVING = DB + "MoveWithoutVolume=yes\n"


def _give_volumes(sm: InProcessMachine, root: Path) -> None:
    """The real volumes sink on an in-process machine, over directories under ``root``."""
    mid = sm.machine.id
    sm.agent.executor.volumes = LocalVolumes(sm.registry.volumes, mid,
                                             root=str(root / mid[:8] / "volumes"),
                                             unit_root=str(root / mid[:8] / "run"))


def test_a_unit_that_moves_without_its_volume_takes_the_record_over_and_stays(
        make_kv: KVFactory, key_prefix: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        for sm in sim.machines.values():
            _give_volumes(sm, tmp_path)
        await submit(reg, "db.service", MOVING)
        await eventually(lambda: _placed(reg))
        host = await _placed(reg)
        assert host is not None

        async def recorded_on() -> str | None:
            record = await reg.volumes.get("pg")
            return None if record is None else record.machine
        await eventually(lambda: _is(recorded_on, host))
        await sim.kill(host)

        async def moved() -> bool:
            return await _placed(reg) not in (None, host)
        await eventually(moved, timeout=20)
        new = await _placed(reg)
        assert new is not None
        await eventually(lambda: _is(recorded_on, new), timeout=20)
        assert (tmp_path / new[:8] / "volumes" / "pg").is_dir()
        assert (f"MOVED WITHOUT ITS VOLUME pg: its data stays behind on machine {host}"
                in caplog.text)
        assert any(r.levelno == logging.WARNING and r.getMessage().startswith("engine:")
                   and "MOVED WITHOUT ITS VOLUME" in r.getMessage() for r in caplog.records)
        assert f"its data stays behind on machine {host}; this machine ({new})" in caplog.text
        record = await reg.volumes.get("pg")
        assert record is not None and record.left_on == host
        text = "\n".join(explain_lines(await explain(reg, Bodies(reg), "db.service")))
        assert f"Volume pg: local on {short_id(new)} at " in text
        assert (f"MOVED WITHOUT ITS VOLUME: the data it had before stays behind on "
                f"{short_id(host)}") in text
        before = (await reg.placements_with_revs())[1].get("db.service")
        # the old machine comes back; a probe pinned to it proves the engine saw it
        _give_volumes(await sim.add(int(host[:8], 16)), tmp_path)
        await submit(reg, "probe.service",
                     f"[Service]\nExecStart=/bin/sleep infinity\n[X-Fleet]\nMachineID={host}\n")
        await eventually(lambda: _is(lambda: _placed_unit(reg, "probe.service"), host),
                         timeout=20)
        assert await _placed(reg) == new
        assert (await reg.placements_with_revs())[1].get("db.service") == before
        assert await recorded_on() == new
    with caplog.at_level(logging.INFO):
        run_sim(make_kv, key_prefix, 3, body)


async def _placed_unit(reg: Registry, name: str) -> str | None:
    return (await reg.placements_with_revs())[0].get(name)


async def _is(read: Callable[[], Awaitable[object]], want: object) -> bool:
    return await read() == want
