"""The engine's commit against what changed after its round read the registry
(issue 10, defect 8), on both KVs: MemoryKV and a real etcd.

A round is the engine's own pipeline (read_view → scheduler → planned schedule
→ guarded groups → Registry.commit); between its read and its commit the
registry changes the way a live cluster does: the machine the round saw gone
registers again, or a client stops or destroys a global unit. The commit must
then be refused, not land a plan made for a world that no longer exists.
"""

from __future__ import annotations

import pytest

from tests.conftest import KVFactory
from tests.contract.registry_runner import run
from unitctl.engine.bodies import parse_requirements
from unitctl.engine.commit import pack, plan_groups
from unitctl.engine.mirror import read_view
from unitctl.engine.planned import build_snapshot, planned_schedule
from unitctl.engine.view import EngineView, PlannedSchedule
from unitctl.model import DesiredState, Machine, Requirements, ScheduleEntry, UnitRecord
from unitctl.registry.leader import Leadership
from unitctl.registry.registry import Registry
from unitctl.registry.schedules import CommitResult
from unitctl.scheduler import schedule
from unitctl.unitfile import UnitFile

L = DesiredState.LAUNCHED
A, B = "a" * 32, "b" * 32
SERVICE = "[Service]\nExecStart=/bin/sleep infinity\n"
GLOBAL = SERVICE + "[X-Fleet]\nGlobal=true\n"


async def submit(reg: Registry, name: str, text: str) -> UnitRecord:
    uf = UnitFile.parse(text)
    rec = UnitRecord(name, uf.hash(), L)
    await reg.create_unit(rec, uf.serialize())
    return rec


async def register(reg: Registry, machine_id: str) -> int:
    lease = await reg.kv.grant_lease(30)
    await reg.register_machine(Machine(machine_id, "10.0.0.1"), lease)
    return lease


async def plan_round(reg: Registry, view: EngineView) -> PlannedSchedule:
    """What the engine's round plans for ``view`` (its own scheduler and requirements)."""
    reqs = {n: parse_requirements(n, await reg.get_body(u.hash)) for n, u in view.units.items()}
    good = {n: r for n, r in reqs.items() if isinstance(r, Requirements)}
    return planned_schedule(view, schedule(build_snapshot(view, good)), {})


async def commit(reg: Registry, view: EngineView, planned: PlannedSchedule,
                 lead: Leadership) -> CommitResult:
    return await reg.commit(pack(plan_groups(reg.keys, view, planned)), lead)


async def lead_on(reg: Registry, machine_id: str, lease: int) -> Leadership:
    lead = await reg.campaign(machine_id, lease)
    assert lead is not None
    return lead


def test_a_move_off_a_machine_that_came_back_is_refused(make_kv: KVFactory,
                                                        key_prefix: str) -> None:
    async def body(reg: Registry) -> None:
        rec = await submit(reg, "u.service", SERVICE)
        lease_a = await register(reg, A)
        lead = await lead_on(reg, B, await register(reg, B))
        entry = ScheduleEntry("u.service", rec.hash, L)
        await commit(reg, await read_view(reg),
                     PlannedSchedule({"u.service": A}, {A: {"u.service": entry}}), lead)
        await reg.kv.revoke_lease(lease_a)  # A's lease lapses: A is gone
        view = await read_view(reg)
        planned = await plan_round(reg, view)
        assert planned.placements == {"u.service": B}  # the round moves u to B
        await register(reg, A)  # A registers again before the commit (and restarts u)
        done = await commit(reg, view, planned, lead)
        assert done.skipped == 1 and done.ops == []
        assert await reg.list_placements() == {"u.service": A}
        assert await reg.list_schedules() == {A: {"u.service": entry}}
        # the next round sees A back: nothing to move
        view = await read_view(reg)
        assert (await plan_round(reg, view)).placements == {"u.service": A}
    run(make_kv, key_prefix, body)


@pytest.mark.parametrize("change", ["stop", "destroy"])
def test_a_stale_round_never_rewrites_a_global_unit(make_kv: KVFactory, key_prefix: str,
                                                    change: str) -> None:
    async def body(reg: Registry) -> None:
        await submit(reg, "g.service", GLOBAL)
        await register(reg, A)
        lead = await lead_on(reg, B, await register(reg, B))
        view = await read_view(reg)
        planned = await plan_round(reg, view)
        assert set(planned.schedules) == {A, B}  # the round puts g on both machines
        if change == "stop":
            await reg.set_desired("g.service", DesiredState.INACTIVE)
        else:
            await reg.destroy_unit("g.service")
        done = await commit(reg, view, planned, lead)
        assert done.ops == [] and done.skipped >= 1
        assert await reg.list_schedules() == {}
    run(make_kv, key_prefix, body)
