"""The engine's incremental round over a real etcd (and the in-memory store).

One new unit after a settled round is placed by the fast path, and what it
commits is what a full round over a fresh read of the registry wants: that
full round finds nothing to change. Changes outside the fast path (a machine
joins, an active unit changes) get a full round. The mirror applies no key
that does not matter to scheduling (agents' states, requests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.conftest import KVFactory
from unitctl.engine.engine import Engine, RoundResult
from unitctl.engine.mirror import Mirror, read_view
from unitctl.engine.planned import build_snapshot
from unitctl.model import DesiredState, Machine, Requirements, UnitRecord, UnitState
from unitctl.registry.leader import Leadership
from unitctl.registry.registry import Registry
from unitctl.scheduler import schedule
from unitctl.unitfile import UnitFile

PLAIN = "[Service]\nExecStart=/bin/sleep infinity\n"
CONFLICTS = PLAIN + "\n[X-Fleet]\nConflicts=web@*.service\n"
MIDS = [c * 32 for c in "abc"]


async def submit(reg: Registry, name: str, text: str = PLAIN,
                 desired: DesiredState = DesiredState.LAUNCHED) -> None:
    uf = UnitFile.parse(text)
    await reg.create_unit(UnitRecord(name, uf.hash(), desired), uf.serialize())


async def next_round(engine: Engine, lead: Leadership, mirror: Mirror) -> RoundResult:
    await asyncio.wait_for(mirror.trigger.wait(), 10)
    mirror.trigger.clear()
    return await engine.reconcile(lead, mirror)


async def full_round_wants_nothing(engine: Engine, reg: Registry) -> None:
    """A full round over a fresh read of the registry has no decision to make."""
    view = await read_view(reg)
    reqs = await engine._requirements(view)
    good = {n: r for n, r in reqs.items() if isinstance(r, Requirements)}
    assert schedule(build_snapshot(view, good)).decisions == ()


def run(make_kv: KVFactory, prefix: str,
        body: Callable[[Engine, Leadership, Mirror, Registry], Awaitable[None]]) -> None:
    async def go() -> None:
        reg = Registry(await make_kv(), prefix)
        await reg.ensure_schema()
        lease = await reg.kv.grant_lease(60)
        for m in MIDS:
            await reg.register_machine(Machine(m, "10.0.0.1"), lease)
        for i in range(6):
            await submit(reg, f"web@{i}.service")
        await submit(reg, "guard.service", CONFLICTS)
        engine = Engine(reg, "test")
        lead = await reg.campaign("test", lease)
        assert lead is not None
        mirror = Mirror(reg)
        await mirror.start()
        try:
            first = await engine.reconcile(lead, mirror)
            assert not first.incremental
            await body(engine, lead, mirror, reg)
        finally:
            await mirror.close()
            await reg.close()
    asyncio.run(asyncio.wait_for(go(), 60))


def test_one_new_unit_takes_the_fast_path_and_matches_a_full_round(
        make_kv: KVFactory, key_prefix: str) -> None:
    async def body(engine: Engine, lead: Leadership, mirror: Mirror, reg: Registry) -> None:
        for i in range(6, 9):  # one by one, as `unitctl start` does
            await submit(reg, f"web@{i}.service")
            result = await next_round(engine, lead, mirror)
            assert result.incremental and result.plan is not None
            name = f"web@{i}.service"
            placements = await reg.list_placements()
            assert placements[name] == result.plan.placements[name]
            assert placements[name] != placements["guard.service"]  # Conflicts held
            await full_round_wants_nothing(engine, reg)
    run(make_kv, key_prefix, body)


def test_submit_then_start_takes_the_fast_path(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(engine: Engine, lead: Leadership, mirror: Mirror, reg: Registry) -> None:
        await submit(reg, "late.service", desired=DesiredState.INACTIVE)
        assert (await next_round(engine, lead, mirror)).incremental
        await reg.set_desired("late.service", DesiredState.LAUNCHED)
        result = await next_round(engine, lead, mirror)
        assert result.incremental
        assert "late.service" in await reg.list_placements()
        await full_round_wants_nothing(engine, reg)
    run(make_kv, key_prefix, body)


def test_changes_outside_the_fast_path_get_a_full_round(
        make_kv: KVFactory, key_prefix: str) -> None:
    async def body(engine: Engine, lead: Leadership, mirror: Mirror, reg: Registry) -> None:
        await reg.set_desired("web@0.service", DesiredState.INACTIVE)  # an active unit
        result = await next_round(engine, lead, mirror)
        assert not result.incremental
        assert "web@0.service" not in await reg.list_placements()
        lease = await reg.kv.grant_lease(60)
        await reg.register_machine(Machine("d" * 32, "10.0.0.4"), lease)  # a machine joins
        await submit(reg, "after-join.service")
        assert not (await next_round(engine, lead, mirror)).incremental
        await full_round_wants_nothing(engine, reg)
    run(make_kv, key_prefix, body)


def test_the_mirror_skips_keys_that_do_not_matter_to_scheduling(
        make_kv: KVFactory, key_prefix: str) -> None:
    async def body(engine: Engine, lead: Leadership, mirror: Mirror, reg: Registry) -> None:
        mirror.take_changes()
        mirror.trigger.clear()
        for i in range(20):
            await reg.put_state(UnitState(f"web@{i % 6}.service", MIDS[0], "loaded", "active",
                                          "running", "x"), 0)
            await reg.kv.put(f"{reg.keys.requests(MIDS[0])}{i}", b"{}")
        await submit(reg, "marker.service", desired=DesiredState.INACTIVE)
        await asyncio.wait_for(mirror.trigger.wait(), 10)  # the marker came: all before too
        changes = mirror.take_changes()
        assert changes.units == {"marker.service"}
        assert not changes.other and not changes.written
    run(make_kv, key_prefix, body)
