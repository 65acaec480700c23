"""The Registry's domain contract, on MemoryKV and on a real etcd."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import KVFactory
from tests.contract.registry_runner import run
from unitctl.engine.commit import pack, plan_groups
from unitctl.engine.mirror import read_view
from unitctl.engine.view import EngineView, PlannedSchedule
from unitctl.errors import ConflictError, NotFoundError, RegistryError
from unitctl.model import DesiredState, Machine, ScheduleEntry, UnitRecord, UnitState
from unitctl.registry.leader import Leadership
from unitctl.registry.registry import Registry
from unitctl.registry.schedules import CommitResult

L = DesiredState.LAUNCHED


async def commit(reg: Registry, view: EngineView, target: PlannedSchedule,
                 lead: Leadership) -> CommitResult:
    """The engine's commit of one round: the view -> target diff, packed, via the registry."""
    return await reg.commit(pack(plan_groups(reg.keys, view, target)), lead)


def test_schema_version_written_once(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(reg: Registry) -> None:
        got = await reg.kv.get(reg.keys.version)
        assert got is not None and got.value == b"1"
        assert await reg.ensure_schema() == 1
        await reg.kv.put(reg.keys.version, b"99")
        with pytest.raises(RegistryError, match="schema 99"):
            await reg.ensure_schema()
    run(make_kv, key_prefix, body)


def test_create_is_idempotent_and_replace_swaps_body(make_kv: KVFactory,
                                                     key_prefix: str) -> None:
    async def body(reg: Registry) -> None:
        a = UnitRecord("a.service", "h1", DesiredState.INACTIVE)
        assert await reg.create_unit(a, "[Service]\nExecStart=/bin/true\n")
        assert not await reg.create_unit(a, "ignored")
        assert not await reg.create_unit(UnitRecord("a.service", "h2", L), "other")
        assert await reg.get_unit("a.service") == a
        assert await reg.create_unit(UnitRecord("a.service", "h2", L), "v2", replace=True)
        got = await reg.get_unit("a.service")
        assert got == UnitRecord("a.service", "h2", L)
        assert await reg.get_body("h2") == "v2"
        assert await reg.get_body("h1") is None  # old body collected
    run(make_kv, key_prefix, body)


def test_bodies_are_shared_and_collected_with_last_user(make_kv: KVFactory,
                                                        key_prefix: str) -> None:
    async def body(reg: Registry) -> None:
        for n in ("x.service", "y.service"):
            await reg.create_unit(UnitRecord(n, "same", DesiredState.INACTIVE), "text")
        assert await reg.destroy_unit("x.service")
        assert await reg.get_body("same") == "text"
        assert await reg.destroy_unit("y.service")
        assert await reg.get_body("same") is None
        assert not await reg.destroy_unit("y.service")
        assert await reg.get_bodies() == {}
    run(make_kv, key_prefix, body)


def test_set_desired(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(reg: Registry) -> None:
        await reg.create_unit(UnitRecord("a.service", "h", DesiredState.INACTIVE), "t")
        assert (await reg.set_desired("a.service", L)).desired is L
        assert [u.desired for u in await reg.list_units()] == [L]
        with pytest.raises(NotFoundError):
            await reg.set_desired("nope.service", L)
    run(make_kv, key_prefix, body)


def test_machines_and_states_live_under_leases(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(reg: Registry) -> None:
        lease = await reg.kv.grant_lease(30)
        m = Machine("a" * 32, "10.0.0.1", {"region": "eu"}, "0.1.0")
        await reg.register_machine(m, lease)
        await reg.register_machine(m, lease)  # re-registering under the same lease is fine
        other = await reg.kv.grant_lease(30)
        with pytest.raises(ConflictError, match="already registered"):
            await reg.register_machine(m, other)
        await reg.put_state(UnitState("u.service", m.id, "loaded", "active", "running", "h"),
                            lease)
        await reg.put_state(UnitState("u.service", "b" * 32, "loaded", "active", "running",
                                      "h"), other)
        assert await reg.list_machines() == [m]
        await reg.delete_state("u.service", "b" * 32)
        assert [s.machine_id for s in await reg.list_states()] == [m.id]
        await reg.kv.revoke_lease(lease)
        assert await reg.list_machines() == []
        assert await reg.list_states() == []
    run(make_kv, key_prefix, body)


def test_leader_election_is_exclusive(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(reg: Registry) -> None:
        l1, l2 = await reg.kv.grant_lease(30), await reg.kv.grant_lease(30)
        lead = await reg.campaign("m1", l1)
        assert lead is not None
        assert await reg.campaign("m2", l2) is None
        assert await reg.leader() == "m1"
        await reg.kv.revoke_lease(l1)
        assert not await reg.still_leader(lead)
        lead2 = await reg.campaign("m2", l2)
        assert lead2 is not None and await reg.leader() == "m2"
    run(make_kv, key_prefix, body)


def test_engine_commit_is_conditioned_on_what_it_read(make_kv: KVFactory,
                                                      key_prefix: str) -> None:
    async def body(reg: Registry) -> None:
        await reg.create_unit(UnitRecord("a.service", "h", L), "t")
        await reg.create_unit(UnitRecord("b.service", "h", L), "t")
        lease = await reg.kv.grant_lease(30)
        lead = await reg.campaign("m1", lease)
        assert lead is not None
        view = await read_view(reg)
        entry_a, entry_b = ScheduleEntry("a.service", "h", L), ScheduleEntry("b.service", "h", L)
        target = PlannedSchedule({"a.service": "m1", "b.service": "m2"},
                                {"m1": {"a.service": entry_a}, "m2": {"b.service": entry_b}})
        # a client changes b after the engine read: b's write must not land, a's must
        await reg.set_desired("b.service", DesiredState.LOADED)
        await commit(reg, view, target, lead)
        assert await reg.list_placements() == {"a.service": "m1"}
        sched, _ = await reg.get_schedule("m1")
        assert sched == {"a.service": entry_a}
        assert (await reg.get_schedule("m2"))[0] == {}
        # moving a: the old schedule entry goes in the same transaction
        view = await read_view(reg)
        await commit(reg, view, PlannedSchedule({"a.service": "m3"}, {"m3": {"a.service": entry_a}},
                                               {"b.service": {"m1": "no"}}), lead)
        assert await reg.list_schedules() == {"m3": {"a.service": entry_a}}
        assert await reg.get_explanation("b.service") == {"m1": "no"}
        await reg.resign(lead)
        with pytest.raises(ConflictError, match="leadership"):
            await commit(reg, await read_view(reg), PlannedSchedule({}, {}), lead)
    run(make_kv, key_prefix, body)


def test_many_units_commit_in_batches(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(reg: Registry) -> None:
        names = [f"u{i:03}.service" for i in range(300)]
        for n in names:
            await reg.create_unit(UnitRecord(n, "h", L), "t")
        lead = await reg.campaign("m", await reg.kv.grant_lease(30))
        assert lead is not None
        view = await read_view(reg)
        target = PlannedSchedule({n: "m" for n in names},
                                {"m": {n: ScheduleEntry(n, "h", L) for n in names}})
        assert (await commit(reg, view, target, lead)).txns > 1
        assert len(await reg.list_placements()) == 300
    run(make_kv, key_prefix, body)


def test_create_units_in_batches(make_kv: KVFactory, key_prefix: str) -> None:
    async def body(reg: Registry) -> None:
        await reg.create_unit(UnitRecord("u005.service", "old", L), "old body")
        batch = [(UnitRecord(f"u{i:03}.service", "h", L), "shared body") for i in range(70)]
        created = await reg.create_units(batch)
        assert created == [i != 5 for i in range(70)]
        assert len(await reg.list_units()) == 70
        assert (await reg.get_unit("u005.service")) == UnitRecord("u005.service", "old", L)
        assert await reg.get_body("h") == "shared body"
    run(make_kv, key_prefix, body)


class _Unpatched:
    """``kv`` with its own read and txn (the rival client of a test that patches them)."""

    def __init__(self, kv: Any, get_prefix: Any, txn: Any) -> None:
        self._kv, self.get_prefix, self.txn = kv, get_prefix, txn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)


def test_set_desired_many_batches_and_loses_nothing_on_a_split(make_kv: KVFactory,
                                                               key_prefix: str) -> None:
    """300 units (several transactions, some in flight together): every one gets
    the new state; a unit changed by someone else after the read, before the
    writes, makes its transaction fail, and that transaction is redone unit by
    unit: nothing is lost."""
    async def body(reg: Registry) -> None:
        names = [f"s@{i}.service" for i in range(300)]
        await reg.create_units([(UnitRecord(n, "h", DesiredState.INACTIVE), "t") for n in names])
        real_read, real_txn = reg.kv.get_prefix, reg.kv.txn
        calls = 0

        async def read_then_a_rival(prefix):  # type: ignore[no-untyped-def]
            got = await real_read(prefix)
            if prefix.endswith("/units/"):  # after the read, another client writes
                other = Registry(real_kv, key_prefix)
                await other.units.set_desired(names[-1], DesiredState.LOADED)
            return got

        async def counted(compares, success, failure=()):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return await real_txn(compares, success, failure)
        real_kv = _Unpatched(reg.kv, real_read, real_txn)
        reg.kv.get_prefix = read_then_a_rival  # type: ignore[method-assign]
        reg.kv.txn = counted  # type: ignore[method-assign]
        try:
            got = await reg.set_desired_many([*names, names[0]], L)
        finally:
            reg.kv.get_prefix = real_read  # type: ignore[method-assign]
            reg.kv.txn = real_txn  # type: ignore[method-assign]
        assert [r.name for r in got] == names and all(r.desired is L for r in got)
        assert 3 < calls < 300  # batched: a few transactions (one redone unit by unit)
        stored = {u.name: u.desired for u in await reg.list_units()}
        assert stored == dict.fromkeys(names, L)
        with pytest.raises(NotFoundError, match=r"nope\.service"):
            await reg.set_desired_many([names[0], "nope.service"], DesiredState.INACTIVE)
        assert (await reg.get_unit(names[0])) == UnitRecord(names[0], "h", L)  # nothing written
    run(make_kv, key_prefix, body)


def test_set_desired_many_on_known_records_redoes_a_unit_changed_since(
        make_kv: KVFactory, key_prefix: str) -> None:
    """Records the caller read: compared by value, no read; one changed since
    (another client) fails its batch, which is redone unit by unit."""
    async def body(reg: Registry) -> None:
        names = [f"k@{i}.service" for i in range(100)]
        await reg.create_units([(UnitRecord(n, "h", DesiredState.INACTIVE), "t") for n in names])
        known = {u.name: u for u in await reg.list_units()}
        await reg.set_desired(names[7], DesiredState.LOADED)  # after the caller's read
        got = await reg.set_desired_many(names, L, known=known)
        assert all(r.desired is L for r in got)
        assert {u.name: u.desired for u in await reg.list_units()} == dict.fromkeys(names, L)
    run(make_kv, key_prefix, body)


def test_set_desired_many_reads_a_known_record_that_already_has_the_target(
        make_kv: KVFactory, key_prefix: str) -> None:
    """A known record already at the target may be stale (restart's own stop
    moved it): it is read again and written, not skipped."""
    async def body(reg: Registry) -> None:
        name = "r.service"
        await reg.create_units([(UnitRecord(name, "h", L), "t")])
        known = {name: UnitRecord(name, "h", L)}
        await reg.set_desired_many([name], DesiredState.LOADED, known=known)  # the stop
        got = await reg.set_desired_many([name], L, known=known)  # known is stale now
        assert got == [UnitRecord(name, "h", L)]
        assert (await reg.get_unit(name)) == UnitRecord(name, "h", L)
        with pytest.raises(NotFoundError, match=r"gone\.service"):
            await reg.set_desired_many(["gone.service"], L,
                                       known={"gone.service": UnitRecord("gone.service", "h", L)})
    run(make_kv, key_prefix, body)


def test_bodies_by_hash_skip_a_body_key_that_does_not_decode(
        make_kv: KVFactory, key_prefix: str) -> None:
    """Several bodies in one get_many: a poison body key (not UTF-8) is left out,
    the others come back, nothing raises; a hash with no body is simply absent."""
    async def body(reg: Registry) -> None:
        await reg.create_units([(UnitRecord("a.service", "ha", L), "[Service]\nExecStart=/a\n"),
                                (UnitRecord("b.service", "hb", L), "[Service]\nExecStart=/b\n")])
        await reg.kv.put(reg.keys.body("bad"), b"\xff\xfe not utf-8")
        got = await reg.get_bodies_by_hash(["ha", "bad", "missing", "hb"])
        assert got == {"ha": "[Service]\nExecStart=/a\n", "hb": "[Service]\nExecStart=/b\n"}
        assert await reg.get_bodies_by_hash(["bad"]) == {}
    run(make_kv, key_prefix, body)


def test_destroy_units_deletes_many_in_few_transactions(make_kv: KVFactory,
                                                        key_prefix: str) -> None:
    """200 units (more than one transaction's ops) go in a few transactions, not
    three round trips each; a body goes with its last user and one still in use
    stays; a key that does not decode is destroyed too; absent names are left
    out of the result; a unit changed between the read and the write is still
    destroyed (the transaction is redone unit by unit)."""
    async def body(reg: Registry) -> None:
        names = [f"d@{i}.service" for i in range(200)]
        await reg.create_units([(UnitRecord(n, "hd", L), "[Service]\nExecStart=/d\n")
                                for n in names])
        await reg.create_units([(UnitRecord("keep.service", "hk", L),
                                 "[Service]\nExecStart=/k\n"),
                                (UnitRecord("other.service", "hk", L),
                                 "[Service]\nExecStart=/k\n")])
        await reg.kv.put(reg.keys.unit("poison.service"), b"\xff not json")
        txns = [0]
        inner = reg.kv.txn

        async def counted(*args: object, **kw: object) -> bool:
            txns[0] += 1
            if txns[0] == 1:  # a unit of the first chunk changes under the destroy
                await reg.set_desired("d@3.service", DesiredState.LOADED)
            return await inner(*args, **kw)  # type: ignore[arg-type]
        reg.kv.txn = counted  # type: ignore[method-assign]
        try:
            got = await reg.destroy_units([*names, "keep.service", "poison.service",
                                           "absent.service"])
        finally:
            reg.kv.txn = inner  # type: ignore[method-assign]
        assert got == [*names, "keep.service", "poison.service"]
        assert {u.name for u in await reg.list_units()} == {"other.service"}
        assert await reg.kv.get(reg.keys.unit("poison.service")) is None
        assert await reg.get_body("hd") is None  # no user left
        assert await reg.get_body("hk") == "[Service]\nExecStart=/k\n"  # other.service
        # 200 units: 4 chunks, the one that failed redone as 64 deletes, 1 set_desired,
        # 2 bodies (one unit per transaction: 400 and more)
        assert txns[0] <= 4 + 64 + 1 + 2, txns[0]
    run(make_kv, key_prefix, body)
