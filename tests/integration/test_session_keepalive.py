"""The agent's lease survives keepalives whose answers are lost, on a real etcd (issue 12,
item 5: a keepalive interval of TTL/5 with a retry schedule).

A real :class:`~unitctl.agent.agent.Agent` registers on a real etcd with a TTL
of 4 s (keepalive every 0.8 s, retry every 0.2 s). Its lease port then loses
the answers of three refreshes in a row (each call fails after the client's
1 s request timeout, as a request lost on the way does). etcd stays reachable throughout,
so the lease must not expire: the machine key keeps its create revision (an
expiry would delete it, and the re-registration would create it again) and
the agent keeps its lease.

Before the retry schedule the session waited on each lost refresh for the
request timeout, then one keepalive interval more, and the lease expired.
"""

from __future__ import annotations

import asyncio

import pytest

from unitctl.agent.agent import Agent, AgentOptions
from unitctl.agent.fake import FakeUnitManager
from unitctl.errors import RegistryUnavailable
from unitctl.model import Machine
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.leases import Leases
from unitctl.registry.registry import Registry
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import eventually

pytestmark = pytest.mark.etcd
MID = "c" * 32
TTL = 4
#: The client's request timeout: when a lost answer is given up.
REQUEST_TIMEOUT = 1.0


class LosingLeases:
    """The real lease port, except that refreshes number ``lose`` lose their answers."""

    def __init__(self, inner: Leases, lose: range) -> None:
        self.inner = inner
        self.lose = lose
        self.refreshes = 0
        self.lost = 0

    async def grant(self, ttl: int) -> int:
        return await self.inner.grant(ttl)

    async def refresh(self, lease: int) -> int:
        self.refreshes += 1
        if self.refreshes in self.lose:
            self.lost += 1
            await asyncio.sleep(REQUEST_TIMEOUT)  # the answer never comes
            raise RegistryUnavailable(f"etcd unreachable: no answer in {REQUEST_TIMEOUT}s")
        return await self.inner.refresh(lease)

    async def revoke(self, lease: int) -> None:
        await self.inner.revoke(lease)


def test_lost_keepalive_answers_do_not_expire_the_lease(etcd: EtcdCluster,
                                                        key_prefix: str) -> None:
    async def go() -> None:
        kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=2))
        registry = Registry(kv, key_prefix)
        await registry.ensure_schema()
        losing = LosingLeases(registry.leases, range(4, 7))
        registry.leases = losing
        agent = Agent(registry, FakeUnitManager(), Machine(MID, "127.0.0.9", {}, "test"),
                      AgentOptions(ttl=TTL, peer_port=0, engine=False))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.ready.wait(), 10)
            key = registry.keys.machine(MID)
            first = await kv.get(key)
            assert first is not None and first.lease == agent.lease
            # the three lost answers, then the lease's whole TTL twice over
            await eventually(lambda: losing.lost == 3, timeout=10)
            refreshed = losing.refreshes
            await eventually(lambda: losing.refreshes >= refreshed + 2 * TTL / 0.8, timeout=30)
            now = await kv.get(key)
            assert now is not None, "the lease expired while etcd was reachable"
            assert now.create_rev == first.create_rev, "the machine registered again"
            assert agent.lease == first.lease
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await kv.close()

    asyncio.run(go())
