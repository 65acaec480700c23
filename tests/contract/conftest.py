"""Fixtures for contract suites: the same tests on the fake and on the real thing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.harness.etcd import EtcdCluster
from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.kv import KV
from unitctl.registry.memory import MemoryKV

KVFactory = Callable[[], Awaitable[KV]]


@pytest.fixture(params=["memory", pytest.param("etcd", marks=pytest.mark.etcd)])
def make_kv(request: pytest.FixtureRequest) -> KVFactory:
    if request.param == "memory":
        async def memory() -> KV:
            return MemoryKV()
        return memory
    cluster: EtcdCluster = request.getfixturevalue("etcd")

    async def real() -> KV:
        return await EtcdKV.connect(EtcdConfig(endpoints=tuple(cluster.endpoints), timeout=2))
    return real


