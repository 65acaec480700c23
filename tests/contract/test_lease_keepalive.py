"""Lease keepalives of many leases at once, on every adapter; on real etcd, EtcdKV
keeps its LeaseKeepAlive streams open (one per lease up to MAX_STREAMS, not one per
refresh), and opens them again after an etcd restart."""

from __future__ import annotations

import asyncio
import re
import urllib.request

from tests.conftest import KVFactory
from tests.contract.test_kv_contract import run
from unitctl.errors import RegistryError
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.kv import KV
from unitctl.registry.leasestream import MAX_STREAMS
from unitctl_testing.etcd import EtcdCluster


def test_concurrent_refreshes_each_answer_their_own_lease(make_kv: KVFactory,
                                                         key_prefix: str) -> None:
    async def body(kv: KV) -> None:
        leases = [await kv.grant_lease(ttl) for ttl in range(20, 40)]
        gone = await kv.grant_lease(20)
        await kv.revoke_lease(gone)
        ttls = await asyncio.gather(*(kv.refresh_lease(lease) for lease in [*leases, gone]))
        assert ttls[:-1] == list(range(20, 40))  # a fresh refresh answers the granted TTL
        assert ttls[-1] <= 0
        for lease in leases:
            await kv.revoke_lease(lease)
    run(make_kv, body)


def keepalive_streams(cluster: EtcdCluster) -> int:
    """LeaseKeepAlive streams etcd has started (its gRPC server metrics)."""
    with urllib.request.urlopen(f"{cluster.endpoint}/metrics", timeout=5) as r:
        text = r.read().decode()
    found = re.search(r'grpc_server_started_total\{[^}]*grpc_method="LeaseKeepAlive"[^}]*\} '
                      r'([0-9.e+]+)', text)
    return 0 if found is None else int(float(found.group(1)))


def test_each_lease_keeps_one_stream_for_its_refreshes(etcd: EtcdCluster) -> None:
    async def go() -> None:
        kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=5))
        try:
            leases = [await kv.grant_lease(30) for _ in range(10)]
            before = keepalive_streams(etcd)
            for _ in range(3):
                ttls = await asyncio.gather(*(kv.refresh_lease(lease) for lease in leases))
                assert all(ttl == 30 for ttl in ttls), ttls
            slots = len({lease % MAX_STREAMS for lease in leases})  # 10 unless IDs collide
            assert keepalive_streams(etcd) - before == slots  # aetcd's own: one per refresh
            assert kv.keepalives.opened == slots
        finally:
            await kv.close()
    asyncio.run(go())


def test_the_stream_is_opened_again_after_an_etcd_restart(own_etcd: EtcdCluster) -> None:
    async def go() -> None:
        kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(own_etcd.endpoints), timeout=2))
        try:
            lease = await kv.grant_lease(60)
            assert await kv.refresh_lease(lease) == 60
            own_etcd.restart_member(0)
            own_etcd.wait_healthy()
            ttl, errors = 0, 0
            for _ in range(100):  # the old stream died with the connection
                try:
                    ttl = await kv.refresh_lease(lease)
                    break
                except RegistryError:
                    errors += 1
                    await asyncio.sleep(0.1)
            assert ttl > 0, f"no refresh after the restart ({errors} errors)"
            assert kv.keepalives.opened >= 2
        finally:
            await kv.close()
    asyncio.run(go())
