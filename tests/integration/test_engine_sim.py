"""Engine + simulated agents (real Agent/Engine/Registry code, fake systemd),
on the in-memory store and on a real etcd."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import KVFactory
from unitctl.agent.agent import Agent
from unitctl.daemon import engine_factory
from unitctl.errors import BusLost
from unitctl.model import DesiredState, UnitRecord
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile
from unitctl_testing.inprocess import InProcessCluster, eventually

L = DesiredState.LAUNCHED
SERVICE = "[Service]\nExecStart=/bin/sleep infinity\n"


async def submit(reg: Registry, name: str, text: str = SERVICE,
                 desired: DesiredState = L) -> None:
    uf = UnitFile.parse(text)
    await reg.create_unit(UnitRecord(name, uf.hash(), desired), uf.serialize())


def run_sim(make_kv: KVFactory, prefix: str, n: int,
            body: Callable[[InProcessCluster, Registry], Awaitable[None]],
            metadata: list[dict[str, str]] | None = None, ttl: int = 2) -> None:
    async def go() -> None:
        sim = InProcessCluster(make_kv, prefix, ttl=ttl)
        client = Registry(await make_kv(), prefix)
        await client.ensure_schema()
        try:
            for i in range(1, n + 1):
                await sim.add(i, (metadata or [{}] * n)[i - 1])
            await body(sim, client)
        finally:
            await sim.close()
            await client.close()
    asyncio.run(asyncio.wait_for(go(), 60))


def on_machines(sim: InProcessCluster, name: str) -> set[str]:
    return sim.running().get(name, set())


def test_units_spread_least_loaded_and_run(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        for i in range(6):
            await submit(reg, f"hello@{i}.service")
        await eventually(lambda: len(sim.running()) == 6)
        counts = sorted(sum(n in v for v in sim.running().values()) for n in sim.machines)
        assert counts == [2, 2, 2]
        await eventually(lambda: _all_active(reg, 6))
    run_sim(make_kv, key_prefix, 3, body)


def test_mongo_and_employees_land_together(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await submit(reg, "filler.service")
        await eventually(lambda: "filler.service" in sim.running())
        await submit(reg, "mongo.service")
        await submit(reg, "employees.service", "[Unit]\nAfter=mongo.service\n" + SERVICE +
                     "[X-Fleet]\nX-ConditionMachineOf=mongo.service\n")
        await eventually(lambda: len(on_machines(sim, "employees.service")) == 1)
        assert on_machines(sim, "mongo.service") == on_machines(sim, "employees.service")
        # and they move together when their machine dies
        (old,) = on_machines(sim, "mongo.service")
        await sim.kill(old)
        await eventually(lambda: len(on_machines(sim, "employees.service")) == 1, timeout=15)
        await eventually(lambda: on_machines(sim, "mongo.service")
                         == on_machines(sim, "employees.service"))
        assert old not in on_machines(sim, "mongo.service")
    run_sim(make_kv, key_prefix, 3, body)


def test_hard_killed_machine_units_move_and_never_run_twice(make_kv: KVFactory,
                                                             key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        for i in range(4):
            await submit(reg, f"web@{i}.service")
        await eventually(lambda: len(sim.running()) == 4)
        victim = next(iter(on_machines(sim, "web@0.service")))
        lost = {u for u, ms in sim.running().items() if victim in ms}
        kept = {u: ms for u, ms in sim.running().items() if victim not in ms}
        await sim.kill(victim)
        took = await eventually(lambda: all(on_machines(sim, u) for u in lost), timeout=15)
        assert took < sim.ttl + 3  # measured ~TTL+0.3s; bench/ reports it
        assert all(len(ms) == 1 for ms in sim.running().values())
        assert {u: ms for u, ms in sim.running().items() if u in kept} == kept  # only lost moved
    run_sim(make_kv, key_prefix, 3, body)


def test_graceful_stop_moves_units_at_once(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await submit(reg, "a.service")
        await eventually(lambda: "a.service" in sim.running())
        (where,) = on_machines(sim, "a.service")
        await sim.stop(where)
        took = await eventually(lambda: len(on_machines(sim, "a.service")) == 1)
        assert took < sim.ttl - 1  # no TTL wait: the lease was revoked (measured ~0.1 s)
    run_sim(make_kv, key_prefix, 2, body, ttl=5)


def test_leader_loss_new_leader_takes_over(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await eventually(lambda: sim.leader() is not None)
        leader = sim.leader()
        assert leader is not None and await reg.leader() == leader
        await sim.kill(leader)
        took = await eventually(lambda: sim.leader() not in (None, leader), timeout=10)
        assert took < sim.ttl + 3  # measured ~TTL+0.3s; bench/ reports it
        await submit(reg, "after.service")
        await eventually(lambda: "after.service" in sim.running())
    run_sim(make_kv, key_prefix, 3, body)


def test_conflicts_five_units_three_machines(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        text = SERVICE + "[X-Fleet]\nConflicts=lb@*.service\n"
        for i in range(1, 6):
            await submit(reg, f"lb@{i}.service", text)
        await eventually(lambda: len(sim.running()) == 3)
        await asyncio.sleep(0.3)
        machines = [next(iter(ms)) for ms in sim.running().values()]
        assert len(set(machines)) == 3 and len(sim.running()) == 3
        explain = await reg.list_explanations()
        assert len(explain) == 2
        for reasons in explain.values():
            assert set(reasons) == set(sim.machines)
            assert all("lb@" in r for r in reasons.values())
    run_sim(make_kv, key_prefix, 3, body)


def test_global_units_and_metadata(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await submit(reg, "monitor.service", SERVICE + "[X-Fleet]\nGlobal=true\n")
        await submit(reg, "eu-only.service", SERVICE +
                     "[X-Fleet]\nGlobal=true\nMachineMetadata=region=eu\n")
        await submit(reg, "us-pinned.service", SERVICE + "[X-Fleet]\nMachineMetadata=region=us\n")
        await eventually(lambda: len(on_machines(sim, "monitor.service")) == 3
                         and len(on_machines(sim, "eu-only.service")) == 2
                         and len(on_machines(sim, "us-pinned.service")) == 1)
        eu = {m for m, sm in sim.machines.items() if sm.machine.metadata["region"] == "eu"}
        assert on_machines(sim, "eu-only.service") == eu
        assert on_machines(sim, "us-pinned.service").isdisjoint(eu)
    meta = [{"region": "eu"}, {"region": "us"}, {"region": "eu"}]
    run_sim(make_kv, key_prefix, 3, body, metadata=meta)


def test_unplaceable_unit_explains_every_machine(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await submit(reg, "nowhere.service", SERVICE + "[X-Fleet]\nMachineMetadata=region=mars\n")
        await eventually(lambda: reg.get_explanation("nowhere.service"))
        reasons = await reg.get_explanation("nowhere.service")
        assert reasons is not None and set(reasons) == set(sim.machines)
        assert all("region" in r and "mars" in r for r in reasons.values())
        # destroying the unit clears its explanation
        await reg.destroy_unit("nowhere.service")
        await eventually(lambda: _gone(reg, "nowhere.service"))
    run_sim(make_kv, key_prefix, 2, body)


async def _all_active(reg: Registry, n: int) -> bool:
    states = await reg.list_states()
    return len(states) == n and {s.active for s in states} == {"active"}


async def _gone(reg: Registry, name: str) -> bool:
    return await reg.get_explanation(name) is None


def test_stop_unload_destroy_cycle(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await submit(reg, "cycle.service")
        await eventually(lambda: "cycle.service" in sim.running())
        (where,) = on_machines(sim, "cycle.service")
        units = sim.machines[where].units
        await reg.set_desired("cycle.service", DesiredState.LOADED)
        await eventually(lambda: "cycle.service" not in sim.running())
        assert "cycle.service" in units.files
        await reg.set_desired("cycle.service", DesiredState.INACTIVE)
        await eventually(lambda: "cycle.service" not in units.files)
        await reg.set_desired("cycle.service", L)
        await eventually(lambda: "cycle.service" in sim.running())
        await reg.destroy_unit("cycle.service")
        await eventually(lambda: not any("cycle.service" in m.units.files
                                         for m in sim.machines.values()))
        assert await reg.get_bodies() == {}
        assert await reg.list_placements() == {}
    run_sim(make_kv, key_prefix, 2, body)


def test_replace_body_reloads_unit(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await submit(reg, "r.service")
        await eventually(lambda: "r.service" in sim.running())
        (where,) = on_machines(sim, "r.service")
        new = UnitFile.parse("[Service]\nExecStart=/bin/sleep 1000\n")
        await reg.create_unit(UnitRecord("r.service", new.hash(), L), new.serialize(),
                              replace=True)
        await eventually(lambda: sim.machines[where].units.files.get("r.service", "")
                         .find("sleep 1000") >= 0)
        assert "r.service" in sim.running()
    run_sim(make_kv, key_prefix, 1, body)


@pytest.mark.parametrize("n", [1])
def test_agent_restart_adopts_running_units(make_kv: KVFactory, key_prefix: str, n: int) -> None:
    async def body(sim: InProcessCluster, reg: Registry) -> None:
        for m in sim.machines.values():
            m.units.keep_history = True
        await submit(reg, "keep.service")
        await eventually(lambda: "keep.service" in sim.running())
        (mid,) = on_machines(sim, "keep.service")
        sm = sim.machines[mid]
        assert sm.task is not None
        sm.task.cancel()  # the old agent process dies without leaving
        await asyncio.gather(sm.task, return_exceptions=True)
        before = [c for c in sm.units.history if c[1] == "keep.service"]
        # restart the agent process on the same "machine" (same fake systemd)
        sm.agent = Agent(sm.registry, sm.units, sm.machine, sm.agent.opts,
                         engine=engine_factory(sm.registry, sm.machine.id, sm.agent.opts))
        sm.units.history.clear()
        sm.units.started = False
        stop = asyncio.Event()
        task = asyncio.create_task(sm.agent.run(stop))
        await asyncio.wait_for(sm.agent.ready.wait(), 10)
        await asyncio.sleep(0.3)
        calls = [c[0] for c in sm.units.history if c[1] == "keep.service"]
        assert "stop" not in calls and "unload" not in calls and "write" not in calls
        assert before  # the first agent did start it
        assert "keep.service" in sim.running()
        assert await reg.list_placements() == {"keep.service": mid}  # nothing moved
        sm.task = task
    run_sim(make_kv, key_prefix, n, body)


def test_lost_systemd_bus_restarts_agent_in_place(key_prefix: str) -> None:
    from unitctl.registry.memory import MemoryKV

    shared = MemoryKV()

    async def make() -> MemoryKV:
        return shared

    async def body(sim: InProcessCluster, reg: Registry) -> None:
        await submit(reg, "first.service")
        await eventually(lambda: "first.service" in sim.running())
        (sm,) = sim.machines.values()
        sm.units.fail_next("start", BusLost("lost the connection to systemd's bus: x"))
        await submit(reg, "second.service")
        assert sm.task is not None
        await asyncio.wait_for(sm.task, 10)  # the agent stops, to be re-executed
        assert sm.agent.leave_on_stop is False
        assert "first.service" in sim.running()  # nothing was unloaded
        assert await reg.list_machines()  # and the lease was kept for the next process
    run_sim(make, key_prefix, 1, body)
