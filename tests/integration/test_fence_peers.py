"""The fence's list of peers on a real etcd: a machine that registers between the
fence's listing of the machine keys and the start of its watch is not missed.

The fence used to list the machines, then read etcd's revision in a second
request and watch from there: a registration landing between the two reads
was in neither, and that peer stayed unknown until the watch ended. Here a
KV wrapper registers a third machine right after the fence's listing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from unitctl.agent.agent import Agent, AgentOptions
from unitctl.agent.fake import FakeUnitManager
from unitctl.model import Machine
from unitctl.registry import codec
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.kv import Range
from unitctl.registry.registry import Registry
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import eventually

pytestmark = pytest.mark.etcd
ME, LATE = "d" * 32, "e" * 32


class RegistersAfterListing:
    """A KV that puts ``LATE``'s machine key just after the first listing of ``base``."""

    def __init__(self, inner: EtcdKV, base: str, late_key: str, late_value: bytes) -> None:
        self.inner = inner
        self.base = base
        self.late = (late_key, late_value)
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_prefix(self, prefix: str) -> Range:
        got = await self.inner.get_prefix(prefix)
        if prefix == self.base and not self.fired:
            self.fired = True
            await self.inner.put(*self.late)
        return got


def test_a_peer_registering_right_after_the_listing_is_known(etcd: EtcdCluster,
                                                             key_prefix: str) -> None:
    async def go() -> None:
        kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=2))
        keys = Registry(kv, key_prefix).keys
        late = Machine(LATE, "127.0.0.8", {}, "test")
        wrapped = RegistersAfterListing(kv, keys.machines(), keys.machine(LATE),
                                        codec.encode_machine(late))
        registry = Registry(wrapped, key_prefix)
        await registry.ensure_schema()
        agent = Agent(registry, FakeUnitManager(), Machine(ME, "127.0.0.7", {}, "test"),
                      AgentOptions(ttl=4, peer_port=0, engine=False))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.ready.wait(), 10)
            await eventually(lambda: wrapped.fired, timeout=10)
            await eventually(lambda: agent.peers.get(LATE) == "127.0.0.8", timeout=5)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await kv.close()

    asyncio.run(go())
