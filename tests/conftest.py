"""Shared fixtures: a real etcd per test session (free loopback ports)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest

from tests.harness.etcd import EtcdCluster


@pytest.fixture(scope="session")
def etcd() -> Iterator[EtcdCluster]:
    """One real single-member etcd for the whole session."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd-server is not installed: run scripts/install-deps.sh")
    cluster = EtcdCluster(size=1)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def key_prefix() -> str:
    """A fresh key prefix, so tests sharing one etcd never see each other."""
    return f"/t-{uuid.uuid4().hex[:12]}/"
