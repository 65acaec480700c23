"""Shared fixtures: a real etcd per test session (free loopback ports)."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from unitctl.registry.etcd import EtcdConfig, EtcdKV
from unitctl.registry.gateway import GatewayKV
from unitctl.registry.kv import KV
from unitctl.registry.memory import MemoryKV
from unitctl_testing.etcd import EtcdCluster

# Speed lives in benchmarks, not tests: no hypothesis deadline or "too slow"
# health check, which fail at random on a loaded host. Every other health check stays.
settings.register_profile(
    "unitctl", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("unitctl")


@contextlib.contextmanager
def started_etcd(size: int = 1) -> Iterator[EtcdCluster]:
    """A real etcd cluster of ``size`` members on free loopback ports, stopped after.

    A missing etcd-server fails the test (never a skip)."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd-server is not installed: run scripts/install-deps.sh")
    cluster = EtcdCluster(size=size)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdCluster]:
    """One real single-member etcd for the whole session."""
    with started_etcd() as cluster:
        yield cluster


@pytest.fixture
def own_etcd() -> Iterator[EtcdCluster]:
    """A single-member etcd of this test's own, for tests that restart or stop it
    (doing that to the session's etcd would disturb other tests)."""
    with started_etcd() as cluster:
        yield cluster


@pytest.fixture
def key_prefix() -> str:
    """A fresh key prefix, so tests sharing one etcd never see each other."""
    return f"/t-{uuid.uuid4().hex[:12]}/"


KVFactory = Callable[[], Awaitable[KV]]


@pytest.fixture(params=["memory", pytest.param("etcd", marks=pytest.mark.etcd),
                        pytest.param("gateway", marks=pytest.mark.etcd)])
def make_kv(request: pytest.FixtureRequest) -> KVFactory:
    if request.param == "memory":
        shared = MemoryKV()  # one "cluster": every connection sees the same store

        async def memory() -> KV:
            return shared
        return memory
    cluster: EtcdCluster = request.getfixturevalue("etcd")
    adapter = EtcdKV if request.param == "etcd" else GatewayKV

    async def real() -> KV:
        return await adapter.connect(EtcdConfig(endpoints=tuple(cluster.endpoints), timeout=2))
    return real


