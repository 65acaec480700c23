"""The agent's adapter, GatewayKV, on a real etcd under the faults an agent lives through.

The agent speaks etcd's JSON gateway (:mod:`unitctl.daemon`); these are the
things a long-lived process needs and a short command never saw: pooled
connections that etcd closed while idle (a restart), an auth token that expired
between two watches, TLS with client certificates and auth under the real
Agent and Engine (in-process, fake systemd).
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.test_etcd_security import _start_etcd, started_tls_etcd, tls_config
from unitctl.errors import RegistryUnavailable
from unitctl.model import DesiredState, UnitRecord
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.gateway import GatewayKV
from unitctl.registry.kv import KV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile
from unitctl_testing.etcd import EtcdCluster, free_port
from unitctl_testing.inprocess import InProcessCluster, eventually

pytestmark = pytest.mark.etcd

SERVICE = "[Service]\nExecStart=/bin/sleep infinity\n"


def test_pooled_connections_closed_by_an_etcd_restart_are_not_used(
        own_etcd: EtcdCluster) -> None:
    """After a restart every idle pooled connection is dead; the first request after
    it must not be sent on one (it failed with "etcd closed the connection")."""
    async def go() -> None:
        kv = await GatewayKV.connect(EtcdConfig(endpoints=tuple(own_etcd.endpoints)))
        try:
            await asyncio.gather(*(kv.put(f"/p/{i}", b"x") for i in range(4)))  # 4 pooled
            for m in own_etcd.members:
                m.kill()
            for m in own_etcd.members:
                m.start(own_etcd.initial_cluster, state="existing", token=own_etcd.token)
            await asyncio.to_thread(own_etcd.wait_healthy)
            for i in range(4):
                got = await kv.get(f"/p/{i}")
                assert got is not None and got.value == b"x"
        finally:
            await kv.close()
    asyncio.run(go())


def _etcdctl(ep: str, *args: str, user: str = "") -> None:
    subprocess.run(["etcdctl", "--endpoints", ep, *(["--user", user] if user else []), *args],
                   check=True, capture_output=True, timeout=30)


def _wait_healthy(ep: str) -> None:
    for _ in range(100):
        if subprocess.run(["etcdctl", "--endpoints", ep, "endpoint", "health"],
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"etcd at {ep} not healthy")


@pytest.fixture
def auth_etcd(tmp_path: Path) -> Iterator[str]:
    """An etcd with auth on and simple tokens that expire after 1 s of disuse."""
    port = free_port()
    proc = _start_etcd(tmp_path, port, "--auth-token-ttl", "1")
    ep = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(ep)
        _etcdctl(ep, "user", "add", "root:s3cret")
        _etcdctl(ep, "auth", "enable")
        yield ep
    finally:
        proc.kill()
        proc.wait()


def test_a_watch_after_the_token_expired_authenticates_again(auth_etcd: str) -> None:
    """A watch opened with an expired token ends (RegistryUnavailable, the caller
    retries, as after any lost watch) and the next one authenticates again:
    before, every later watch was refused for good until some unary call happened
    to fetch a new token."""
    cfg = EtcdConfig(endpoints=(auth_etcd,), username="root", password="s3cret", timeout=3)

    async def go() -> None:
        kv = await GatewayKV.connect(cfg)
        try:
            rev = await kv.put("/w/a", b"1")
            await asyncio.sleep(2.5)  # the token expires (--auth-token-ttl 1)
            for attempt in range(2):
                try:
                    batch = await asyncio.wait_for(anext(aiter(kv.watch_prefix("/w/", rev))), 5)
                except RegistryUnavailable:
                    assert attempt == 0
                    continue
                assert [ev.key for ev in batch] == ["/w/a"]
                return
        finally:
            await kv.close()
    asyncio.run(go())


def _run_agents(make_kv: Callable[[], Awaitable[KV]], prefix: str) -> None:
    async def go() -> None:
        sim = InProcessCluster(make_kv, prefix, ttl=3)
        reg = Registry(await make_kv(), prefix)
        await reg.ensure_schema()
        try:
            for i in (1, 2):
                await sim.add(i)
            await eventually(lambda: sim.leader() is not None, timeout=20)
            uf = UnitFile.parse(SERVICE)
            await reg.create_unit(UnitRecord("sec.service", uf.hash(), DesiredState.LAUNCHED),
                                  uf.serialize())
            await eventually(lambda: len(sim.running().get("sec.service", ())) == 1,
                             timeout=20)
        finally:
            await sim.close()
            await reg.close()
    asyncio.run(asyncio.wait_for(go(), 60))


def test_agents_over_the_gateway_with_auth(auth_etcd: str) -> None:
    """Agents and engine on GatewayKV with a user and tokens expiring every second."""
    cfg = EtcdConfig(endpoints=(auth_etcd,), username="root", password="s3cret", timeout=3)

    async def make() -> KV:
        return await GatewayKV.connect(cfg)
    _run_agents(make, "/auth/")


def test_agents_over_the_gateway_with_tls_client_certificates() -> None:
    with started_tls_etcd("unitctl-gw-tls-") as (endpoint, certs):
        cfg = tls_config(endpoint, certs)

        async def make() -> KV:
            return await GatewayKV.connect(cfg)
        for _ in range(100):  # etcd comes up
            try:
                asyncio.run(_probe(cfg))
                break
            except RegistryUnavailable:
                time.sleep(0.1)
        _run_agents(make, "/tls/")


async def _probe(cfg: EtcdConfig) -> None:
    kv = await GatewayKV.connect(cfg)
    try:
        await kv.revision()
    finally:
        await kv.close()


def test_a_watch_whose_endpoint_is_down_tries_the_next_member(etcd: EtcdCluster) -> None:
    """The first endpoint is dead: the watch that could not connect moves it last, so
    the caller's next watch reaches a live member (before, every watch went to the
    first endpoint until some unary call happened to fail over)."""
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = EtcdConfig(endpoints=(dead, *etcd.endpoints), timeout=2)

    async def go() -> None:
        kv = await GatewayKV.connect(cfg)
        writer = await GatewayKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints)))
        try:
            rev = await writer.put("/fo/a", b"1")
            for attempt in range(2):
                try:
                    batch = await asyncio.wait_for(anext(aiter(kv.watch_prefix("/fo/", rev))),
                                                   5)
                except RegistryUnavailable:
                    assert attempt == 0
                    continue
                assert [ev.key for ev in batch] == ["/fo/a"]
                return
        finally:
            await kv.close()
            await writer.close()
    asyncio.run(go())


def test_a_keepalive_never_queues_behind_other_calls(etcd: EtcdCluster) -> None:
    """Every thread of the loop's executor is busy (calls waiting on a slow etcd,
    a file write...): the lease keepalive still runs, on its own thread. Before,
    it queued behind them and the lease could expire meanwhile."""
    async def go() -> None:
        kv = await GatewayKV.connect(EtcdConfig(endpoints=tuple(etcd.endpoints)))
        lease = await kv.grant_lease(10)
        loop = asyncio.get_running_loop()
        release = threading.Event()
        blockers = [loop.run_in_executor(None, release.wait, 30) for _ in range(64)]
        try:
            assert await asyncio.wait_for(kv.refresh_lease(lease), 10) > 0
            assert not any(b.done() for b in blockers)  # renewed while all were still busy
        finally:
            release.set()
            await asyncio.gather(*blockers)
            await kv.revoke_lease(lease)
            await kv.close()
    asyncio.run(go())
