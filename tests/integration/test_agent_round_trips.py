"""The agent's etcd requests per unit placed, on a real etcd (issue 12, Deliver 4).

A schedule change used to cost its agent a schedule read per change, a body
read per unit whose body it had not cached, one put per service record and a
state transaction per burst. Now the agent follows its schedule from its
watch's own events (no read per change), reads the missing bodies of a change
in one batch, and writes service records and states in batched transactions:
its requests grow with the number of changes, not with the number of units.

The real Agent (fake systemd) and Registry over a real single-member etcd; the
schedule is written the way the engine does (schedule keys in transactions),
in a few changes of many units each.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from unitctl.agent.agent import Agent, AgentOptions
from unitctl.agent.fake import FakeUnitManager
from unitctl.model import DesiredState, Machine, ScheduleEntry
from unitctl.registry import codec
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.kv import Compare, Event, Op, Put
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import eventually

pytestmark = pytest.mark.etcd

MID = "a" * 32
TEXT = "[Unit]\nDescription=bench %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"


class CountingKV:
    """The real EtcdKV; counts the calls made through it, by method."""

    def __init__(self, inner: EtcdKV) -> None:
        self.inner = inner
        self.page_size = inner.page_size
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in ("get", "get_prefix", "put", "delete", "txn"):
            async def counted(*args: Any, **kw: Any) -> Any:
                self.calls[name] += 1
                return await attr(*args, **kw)
            return counted
        return attr

    def watch_prefix(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        return self.inner.watch_prefix(prefix, start_rev)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> bool:
        self.calls["txn"] += 1
        return await self.inner.txn(compares, success, failure)


async def _schedule(reg: Registry, names: list[str], sha: str) -> None:
    """Write schedule entries of ``names`` in one transaction (as an engine commit)."""
    entry = {n: ScheduleEntry(n, sha, DesiredState.LAUNCHED) for n in names}
    await reg.kv.txn([], [Put(reg.keys.scheduled(MID, n), codec.encode_entry(e))
                          for n, e in entry.items()])


def test_requests_grow_with_changes_not_with_units(etcd: EtcdCluster) -> None:
    """Three changes of 20 units each: no schedule read after the first, one body
    read, and far fewer writes than units (each used to cost a service put)."""
    async def scenario() -> None:
        raw = await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=10))
        kv = CountingKV(raw)
        reg = Registry(kv, "/roundtrips/")
        writer = Registry(raw, "/roundtrips/")
        await writer.ensure_schema()
        sha = UnitFile.parse(TEXT).hash()
        await raw.put(writer.keys.body(sha), TEXT.encode())
        units = FakeUnitManager(keep_history=False)
        agent = Agent(reg, units, Machine(MID, "10.0.0.1"),
                      AgentOptions(ttl=30, peer_port=0, engine=False))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.ready.wait(), 20)
            await asyncio.sleep(0.5)  # registration's own writes are done
            before = Counter(kv.calls)
            names = [f"svc@{i}.service" for i in range(60)]
            for i in range(0, 60, 20):
                await _schedule(writer, names[i:i + 20], sha)
                await asyncio.sleep(0.2)
            await eventually(lambda: all(agent.unit_states.get(n) is not None and
                                         agent.unit_states[n].active == "active"
                                         for n in names), timeout=20)
            states, _ = await writer.states_of(names[-1])
            await eventually(lambda: len(agent.services.published) == 60, timeout=20)
            await asyncio.sleep(0.3)
            spent = kv.calls - before
            assert states, "the last unit's state was published"
            assert spent["get_prefix"] == 0, spent  # no schedule read per change
            assert spent["get"] <= 1, spent  # the one body, read once
            assert spent["put"] + spent["txn"] <= 20, spent  # not one per unit (60)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await raw.close()
    asyncio.run(scenario())


def test_a_local_wake_is_not_a_contact_with_etcd(etcd: EtcdCluster) -> None:
    """The schedule loop reconciles on local wake-ups too (a retry timer, a unit's
    state); with no read any more, such a wake-up must not count as etcd having
    answered, or an agent cut off from etcd would never fence (docs/fencing.md)."""
    async def scenario() -> None:
        kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=10))
        reg = Registry(kv, "/localwake/")
        await reg.ensure_schema()
        now = [1000.0]
        agent = Agent(reg, FakeUnitManager(keep_history=False), Machine(MID, "10.0.0.1"),
                      AgentOptions(ttl=30, peer_port=0, engine=False), clock=lambda: now[0])
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.ready.wait(), 20)
            await asyncio.sleep(0.2)
            now[0] = 2000.0  # the next keepalive is TTL/8 = 3.75 s away
            reconciled = len(agent.executor.started)
            agent._wake.set()  # a local wake-up: no read, no watch event
            await asyncio.sleep(0.3)
            assert agent.last_contact == 1000.0
            assert len(agent.executor.started) == reconciled
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await kv.close()
    asyncio.run(scenario())


def test_a_started_units_state_and_service_record_land_in_one_transaction(
        etcd: EtcdCluster) -> None:
    """The state publisher carries the service records' changes: each started
    unit's ``active`` state and its record are written at one revision (they
    used to be two transactions per burst, the records' on their own loop), and
    a stop withdraws the record in the same write as the ``inactive`` state."""
    async def scenario() -> None:
        raw = await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=10))
        kv = CountingKV(raw)
        reg = Registry(kv, "/onetxn/")
        writer = Registry(raw, "/onetxn/")
        await writer.ensure_schema()
        sha = UnitFile.parse(TEXT).hash()
        await raw.put(writer.keys.body(sha), TEXT.encode())
        agent = Agent(reg, FakeUnitManager(keep_history=False), Machine(MID, "10.0.0.1"),
                      AgentOptions(ttl=30, peer_port=0, engine=False))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.ready.wait(), 20)
            await asyncio.sleep(0.5)
            names = [f"svc@{i}.service" for i in range(10)]
            before = Counter(kv.calls)
            await _schedule(writer, names, sha)
            await eventually(lambda: len(agent.services.published) == 10, timeout=20)
            await asyncio.sleep(0.3)
            for name in names:
                state = await raw.get(writer.keys.state(name, MID))
                record = await raw.get(writer.services.key(name[:-len(".service")], MID))
                assert state is not None and record is not None, name
                assert b'"active"' in state.value
                assert state.mod_rev == record.mod_rev, name
            assert (kv.calls - before)["txn"] <= 2, kv.calls - before
            await raw.put(writer.keys.scheduled(MID, names[0]), codec.encode_entry(
                ScheduleEntry(names[0], sha, DesiredState.LOADED)))
            await eventually(lambda: "svc@0" not in agent.services.published, timeout=20)
            state = await raw.get(writer.keys.state(names[0], MID))
            assert state is not None and b'"inactive"' in state.value
            gone = await raw.get_prefix(writer.services.key("svc@0", MID))
            assert not gone.kvs
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await raw.close()
    asyncio.run(scenario())
