"""The fence while etcd is down for everyone, on a real etcd and real peer servers.

Three agents (fake systemd, TTL 4 s) on loopback addresses. etcd stops, and
one agent (C) is cut off from etcd on its own as well. Every agent hears
its peers cut off too, and holds: nothing stops. Past ``ttl + LOSS_GRACE`` the
questions to the peers back off (they were N x N connections every ttl/20
for the whole outage, "the fence storm"). Then etcd comes back (restarted:
every lease renewed) for A and B but not for C: C must still fence while its
lease is alive, before the engine could move its units.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from unitctl.agent.agent import Agent, AgentOptions
from unitctl.agent.fake import FakeUnitManager
from unitctl.agent.fencing import LOSS_GRACE, check_interval, hold_backoff_cap
from unitctl.errors import RegistryError
from unitctl.model import Machine
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.kv import Event
from unitctl.registry.registry import Registry
from unitctl_testing.etcd import EtcdCluster, free_port
from unitctl_testing.inprocess import eventually

pytestmark = pytest.mark.etcd
TTL = 4
IPS = {"a" * 32: "127.0.0.21", "b" * 32: "127.0.0.22", "c" * 32: "127.0.0.23"}
CALLS = {"get", "get_prefix", "put", "delete", "txn", "grant_lease", "refresh_lease",
         "revoke_lease", "revision"}


class CutOff:
    """A KV that, once :attr:`cut`, fails every request after a short wait (a machine
    whose network to etcd is gone), and ends its watches."""

    def __init__(self, inner: EtcdKV) -> None:
        self.inner = inner
        self.cut = False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name not in CALLS:
            return real

        async def call(*args: Any, **kw: Any) -> Any:
            if self.cut:
                await asyncio.sleep(0.2)
                raise RegistryError("etcd unreachable (cut off by the test)")
            return await real(*args, **kw)
        return call

    async def watch_prefix(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        if self.cut:
            await asyncio.sleep(0.2)
            raise RegistryError("etcd unreachable (cut off by the test)")
        async for events in self.inner.watch_prefix(prefix, start_rev):
            if self.cut:
                raise RegistryError("etcd unreachable (cut off by the test)")
            yield events


async def _agents(etcd: EtcdCluster, prefix: str, port: int
                  ) -> tuple[dict[str, Agent], CutOff, list[asyncio.Task[None]],
                             asyncio.Event, list[EtcdKV]]:
    stop, agents, tasks, conns = asyncio.Event(), {}, [], []
    cut: CutOff | None = None
    for mid, ip in IPS.items():
        kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=1))
        conns.append(kv)
        wrapped = CutOff(kv)
        cut = wrapped if mid.startswith("c") else cut
        registry = Registry(wrapped, prefix)
        await registry.ensure_schema()
        opts = AgentOptions(ttl=TTL, peer_port=port, peer_host=ip, engine=False)
        agents[mid] = Agent(registry, FakeUnitManager(), Machine(mid, ip, {}, "test"), opts)
        tasks.append(asyncio.create_task(agents[mid].run(stop)))
        await asyncio.wait_for(agents[mid].ready.wait(), 10)
    assert cut is not None
    return agents, cut, tasks, stop, conns


async def _lease_alive(etcd: EtcdCluster, prefix: str, mid: str) -> bool:
    kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=1))
    try:
        return await kv.get(Registry(kv, prefix).keys.machine(mid)) is not None
    finally:
        await kv.close()


def test_a_long_hold_backs_off_and_a_peer_back_on_etcd_still_fences_in_time(
        own_etcd: EtcdCluster, key_prefix: str) -> None:
    async def go() -> None:
        agents, c_kv, tasks, stop, conns = await _agents(own_etcd, key_prefix, free_port())
        a, c = agents["a" * 32], agents["c" * 32]
        try:
            await eventually(lambda: all(len(x.peers) == 2 for x in agents.values()))
            own_etcd.members[0].kill()
            c_kv.cut = True
            # every agent holds; once past ttl + LOSS_GRACE the questions back off
            await asyncio.sleep(TTL + LOSS_GRACE + 3 * hold_backoff_cap(TTL))
            assert not any(x.fencer.fenced for x in agents.values())
            before, window = c.fencer.asks_total, 4 * hold_backoff_cap(TTL)
            await asyncio.sleep(window)
            asked = c.fencer.asks_total - before
            # unbacked, one round every check interval (+ the query): 34 in this window
            # (6.8 s / 0.2 s); backed off to 1.7 s less up to 20 % jitter: 4 or 5
            assert 1 <= asked <= 6, (asked, window / check_interval(TTL))
            assert not any(x.fencer.fenced for x in agents.values())
            # etcd is back (restarted: every lease renewed) for A and B, not for C
            own_etcd.members[0].start(own_etcd.initial_cluster, state="existing",
                                      token=own_etcd.token)
            await asyncio.to_thread(own_etcd.wait_healthy)
            await eventually(lambda: a.session.lease_age() < 1, timeout=10)
            while not c.fencer.fenced:
                # C's machine key lives while its lease does: until it vanishes the
                # engine cannot move C's units, so C must fence before that
                assert await _lease_alive(own_etcd, key_prefix, "c" * 32), \
                    "C's lease expired before C fenced"
                await asyncio.sleep(0.05)
            assert await _lease_alive(own_etcd, key_prefix, "c" * 32)
            assert not a.fencer.fenced and not agents["b" * 32].fencer.fenced
        finally:
            stop.set()
            c_kv.cut = False
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 20)
            for kv in conns:
                await kv.close()
    asyncio.run(go())
