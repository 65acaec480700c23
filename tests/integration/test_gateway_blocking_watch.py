"""GatewayKV's blocking watch (:mod:`unitctl.registry.gatewayblock`) on a real etcd:
plain and over TLS with client certificates, and when etcd goes away.

The contract is the asyncio watch's: once ``created`` is set, every change under
the prefix comes in order; a lost connection raises RegistryUnavailable. Over
TLS a large batch spans several TLS records, each read after its own
``select``. (``BlockingWatch.buffered``, for bytes ``ssl`` decrypted ahead
where ``select`` cannot see them, is a safeguard this test does not reach:
Python's ``ssl`` reads one record per ``recv`` and no further.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.test_etcd_security import started_tls_etcd, tls_config
from unitctl.errors import RegistryUnavailable
from unitctl.registry.blocking import run_blocking
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.gateway import GatewayKV
from unitctl.registry.gatewayblock import BlockingWatch, readable
from unitctl.registry.kv import Put
from unitctl_testing.etcd import EtcdCluster

pytestmark = pytest.mark.etcd


def _created(watch: BlockingWatch) -> int:
    deadline = time.monotonic() + 10
    while watch.created is None:
        assert time.monotonic() < deadline, "etcd did not create the watch"
        for w in readable([watch], 1.0):
            assert w.read() == []
    return watch.created


def _keys(watch: BlockingWatch, count: int) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + 10
    while len(got) < count:
        assert time.monotonic() < deadline, got[-3:]
        for w in readable([watch], 1.0):
            got += [ev.key for batch in w.read() for ev in batch]
    return got


def _check(kv: GatewayKV, prefix: str) -> None:
    before = run_blocking(kv.put(f"{prefix}before", b"x"))
    watch = kv.watch_blocking(prefix)
    try:
        created = _created(watch)
        assert created >= 1
        # a change under the prefix after the watch was created comes on it; one outside
        # does not; a large transaction (100 keys of 1 KiB: several TLS records of 16 KiB)
        # comes whole and in order
        run_blocking(kv.put("/elsewhere", b"x"))
        run_blocking(kv.put(f"{prefix}a", b"1"))
        big = [Put(f"{prefix}big/{i:03d}", b"v" * 1024) for i in range(100)]
        run_blocking(kv.txn([], big))
        keys = _keys(watch, 101)
        assert keys == [f"{prefix}a", *(op.key for op in big)]
        assert before <= created
    finally:
        watch.close()
        run_blocking(kv.close())


def test_a_blocking_watch_sees_every_change_after_its_creation(etcd: EtcdCluster,
                                                               key_prefix: str) -> None:
    _check(GatewayKV.create(EtcdConfig(endpoints=tuple(etcd.endpoints), timeout=3)), key_prefix)


@pytest.fixture
def tls_etcd() -> Iterator[EtcdConfig]:
    with started_tls_etcd("unitctl-gw-block-tls-") as (endpoint, certs):
        cfg = tls_config(endpoint, certs)
        for _ in range(100):  # etcd comes up
            try:
                run_blocking(GatewayKV.create(cfg).revision())
                break
            except RegistryUnavailable:
                time.sleep(0.1)
        yield cfg


def test_a_blocking_watch_over_tls_with_client_certificates(tls_etcd: EtcdConfig) -> None:
    _check(GatewayKV.create(tls_etcd), "/tls-block/")


def test_a_blocking_watch_ends_with_registry_unavailable_when_etcd_goes(
        own_etcd: EtcdCluster) -> None:
    kv = GatewayKV.create(EtcdConfig(endpoints=tuple(own_etcd.endpoints), timeout=2))
    watch = kv.watch_blocking("/gone/")
    try:
        _created(watch)
        own_etcd.members[0].kill()
        with pytest.raises(RegistryUnavailable, match="etcd unreachable"):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                for w in readable([watch], 1.0):
                    w.read()
        with pytest.raises(RegistryUnavailable, match="etcd unreachable"):
            kv.watch_blocking("/gone/")  # and a new one cannot connect
    finally:
        watch.close()
