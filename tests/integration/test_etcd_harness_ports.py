"""The test etcd's first start survives a port taken after it was picked free."""

from __future__ import annotations

import socket

from tests.real import require_tool
from unitctl_testing.etcd import EtcdCluster


def test_a_taken_client_port_is_replaced_and_etcd_starts() -> None:
    require_tool("etcd", "the test etcd")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    cluster = EtcdCluster(size=1)
    cluster.members[0].client_port = taken.getsockname()[1]
    try:
        cluster.start()
        member = cluster.members[0]
        assert member.client_port != taken.getsockname()[1]
        assert member.healthy()
    finally:
        cluster.stop()
        taken.close()
