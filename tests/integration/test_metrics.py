"""An agent's /metrics: the real Agent and Engine in-process over a real etcd, the
real exposition server on a free loopback port, read over a socket."""

from __future__ import annotations

import asyncio
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.apiharness import kv_factory
from unitctl.metrics import catalog
from unitctl.metrics.agentview import AgentCollector
from unitctl.metrics.exposition import serving
from unitctl.metrics.kv import MeteredKV
from unitctl.registry.kv import KV
from unitctl_testing.etcd import EtcdCluster
from unitctl_testing.inprocess import InProcessCluster, eventually

pytestmark = pytest.mark.etcd


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_agent_metrics_over_http(etcd: EtcdCluster, key_prefix: str) -> None:
    async def go() -> None:
        plain = kv_factory(etcd)

        async def metered() -> KV:
            return MeteredKV(await plain())
        sim = InProcessCluster(metered, key_prefix)
        try:
            sm = await sim.add(1)
            collector = AgentCollector(sm.agent)
            catalog.register(collector)
            try:
                await _scrape(sm, sim)
            finally:
                catalog.unregister(collector)
        finally:
            await sim.close()
    asyncio.run(asyncio.wait_for(go(), 60))


async def _scrape(sm: object, sim: InProcessCluster) -> None:
    await eventually(lambda: sim.leader() is not None)
    async with serving(("127.0.0.1", 0), catalog.REGISTRY) as port:
        async def scraped() -> bool:
            _, body = await http_get(port, "/metrics")
            got = samples(body)
            return got.get(("unitctl_engine_leader", ()), 0) == 1 and \
                got.get(("unitctl_engine_round_seconds_count", ()), 0) >= 1
        await eventually(scraped)
        status, body = await http_get(port, "/metrics")
        assert status == 200
        got = samples(body)
        assert got[("unitctl_fenced", ())] == 0
        assert got[("unitctl_fence_events_total", (("event", "fenced"),))] == 0
        assert got[("unitctl_fence_peer_queries_total", ())] == 0  # etcd never went silent
        assert ("unitctl_engine_unplaceable_units", ()) in got
        assert ("unitctl_engine_placements", ()) in got
        assert any(name == "unitctl_etcd_request_seconds_count" and dict(labels)["op"] == "txn"
                   for name, labels in got)
        assert re.search(r"^# TYPE unitctl_units gauge$", body, re.M)
        assert (await http_get(port, "/other"))[0] == 404
        assert (await http_get(port, "/metrics", "POST"))[0] == 405
