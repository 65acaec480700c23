"""The waiting client on a real etcd: watches from etcd's "created" revision, and no
read after a wake (issue 12, item 2).

* ``GatewayKV.watch_prefix_now`` starts at etcd's current revision and names it
  once etcd created the watch: a change before it never comes on the watch, every
  change after it does (so a read made after that sees the rest: no gap);
* a waiter on one unit reads its keys once; the placement and the state that
  end the wait come as the watches' events and cost no read (the old waiter read
  the revision first and re-read the unit's placement and states on each wake);
* an event the first read already holds, or one older than it, changes nothing;
  a newer one is taken (:class:`unitctl.client.unitkeys.UnitKeys`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from tests.conftest import KVFactory
from unitctl.client import Client
from unitctl.client.unitkeys import unit_keys
from unitctl.model import DesiredState, Machine, UnitRecord, UnitState
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.gateway import GatewayKV
from unitctl.registry.kv import Compare, Event, EventKind, KeyValue, Op, Range
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile
from unitctl_testing.etcd import EtcdCluster

HELLO = "[Service]\nExecStart=/bin/sleep infinity\n"
M1 = "f" * 32


class CountingKV:
    """A real KV that counts reads (get, get_prefix) and passes the rest through."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.page_size = inner.page_size
        self.reads: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, key: str) -> KeyValue | None:
        self.reads[key] += 1
        result: KeyValue | None = await self.inner.get(key)
        return result

    async def get_prefix(self, prefix: str) -> Range:
        self.reads[prefix] += 1
        result: Range = await self.inner.get_prefix(prefix)
        return result

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> bool:
        ok: bool = await self.inner.txn(compares, success, failure)
        return ok

    def watch_prefix(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        stream: AsyncIterator[list[Event]] = self.inner.watch_prefix(prefix, start_rev)
        return stream


async def _gateway(etcd: EtcdCluster) -> GatewayKV:
    return await GatewayKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=5))


@pytest.mark.etcd
def test_a_watch_from_now_names_its_revision_and_misses_nothing_after_it(
        etcd: EtcdCluster, key_prefix: str) -> None:
    async def scenario() -> None:
        kv = await _gateway(etcd)
        before = await kv.put(f"{key_prefix}a", b"before")
        created: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        stream = kv.watch_prefix_now(key_prefix, created.set_result)
        first = asyncio.ensure_future(anext(stream))
        revision = await asyncio.wait_for(created, 10)
        assert revision >= before
        after = await kv.put(f"{key_prefix}b", b"after")
        batch = await asyncio.wait_for(first, 10)
        assert [(e.key, e.value, e.mod_rev) for e in batch] == [
            (f"{key_prefix}b", b"after", after)]
        assert after > revision
        await stream.aclose()  # type: ignore[attr-defined]
        await kv.close()
    asyncio.run(scenario())


@pytest.mark.etcd
def test_the_wake_that_ends_a_wait_costs_no_read(etcd: EtcdCluster, key_prefix: str) -> None:
    async def scenario() -> None:
        kv = CountingKV(await _gateway(etcd))
        reg = Registry(kv, key_prefix)
        hello = UnitFile.parse(HELLO)
        await reg.register_machine(Machine(M1, "10.0.0.1"), 0)
        await reg.create_unit(UnitRecord("hello.service", hello.hash(), DesiredState.LAUNCHED),
                              hello.serialize())
        client = Client(reg, out=lambda _s: None, err=lambda _s: None, attempt_seconds=30)
        reads: list[int] = []

        async def until(check: Callable[[], bool]) -> None:
            while not check():
                await asyncio.sleep(0.01)

        async def cluster() -> None:
            # the wait's first read is done once the unit's explanation key was read
            await until(lambda: kv.reads[reg.keys.explanation("hello.service")] > 0)
            await reg.kv.put(reg.keys.placement("hello.service"), M1.encode())
            # its machine is new to the waiter: read once (the placement's wake)
            await until(lambda: kv.reads[reg.keys.machines()] > 0)
            reads.append(sum(kv.reads.values()))
            await reg.put_state(UnitState("hello.service", M1, "loaded", "active", "running",
                                          hello.hash()), 0)

        task = asyncio.create_task(cluster())
        await asyncio.wait_for(client.wait_for(["hello.service"],
                                               client.reached(DesiredState.LAUNCHED), 1), 20)
        await task
        assert sum(kv.reads.values()) == reads[0], kv.reads  # nothing read after the state
        await reg.close()
    asyncio.run(scenario())


def test_events_the_read_holds_change_nothing_and_newer_ones_are_taken(
        make_kv: KVFactory, key_prefix: str) -> None:
    async def scenario() -> None:
        reg = Registry(await make_kv(), key_prefix)
        name = "hello.service"
        state_key = f"{reg.keys.states()}{name}/{M1}"
        old = UnitState(name, M1, "loaded", "inactive", "dead", "x")
        await reg.put_state(old, 0)
        keys = unit_keys(reg, [name])
        await keys.refresh([])
        read_rev = keys.read_revs[f"{reg.keys.states()}{name}/"][0]
        stale = Event(EventKind.DELETE, state_key, b"", read_rev)  # in the read already
        assert not keys.apply([stale])
        assert keys.states()[name][M1].state.active == "inactive"
        await reg.put_state(UnitState(name, M1, "loaded", "active", "running", "x"), 0)
        rng = await reg.records(f"{reg.keys.states()}{name}/")
        [record] = rng[0]
        newer = Event(EventKind.PUT, state_key, record.data, record.mod_rev)
        assert not keys.apply([newer])
        assert keys.states()[name][M1].state.active == "active"
        # the unit's record was absent at the read: an event that the read may or may
        # not hold is read again, never guessed
        assert reg.keys.unit(name) in keys.apply(
            [Event(EventKind.PUT, reg.keys.unit(name), b"{}", read_rev)])
        await reg.close()
    asyncio.run(scenario())

