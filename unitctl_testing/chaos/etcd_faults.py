"""etcd faults the harness lacked: a restart of the whole cluster, and reading one key.

``restart_all`` SIGKILLs every member and starts them again on their data dirs
(``--initial-cluster-state existing``), waits until all are healthy and returns
the outage (kill to healthy). ``restart_member`` kills one member, keeps it down
for ``down`` seconds, starts it again and waits. ``get`` reads a key through
etcd's JSON gateway (no client library, works while the cluster changes).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request

from unitctl_testing.cluster import Cluster
from unitctl_testing.etcd import EtcdCluster


def _etcd(c: Cluster) -> EtcdCluster:
    if c.etcd is None:
        raise RuntimeError("cluster has no etcd")
    return c.etcd


def _remember_pids(c: Cluster) -> None:
    c.etcd_pids = [m.proc.pid for m in _etcd(c).members if m.proc is not None]


def restart_all(c: Cluster, timeout: float = 30) -> float:
    etcd = _etcd(c)
    t0 = time.monotonic()
    for m in etcd.members:
        m.kill()
    for m in etcd.members:
        m.start(etcd.initial_cluster, state="existing", token=etcd.token)
    _remember_pids(c)
    etcd.wait_healthy(timeout)
    return time.monotonic() - t0


def restart_member(c: Cluster, index: int, down: float, timeout: float = 30) -> float:
    etcd = _etcd(c)
    m = etcd.members[index]
    t0 = time.monotonic()
    m.kill()
    time.sleep(down)
    m.start(etcd.initial_cluster, state="existing", token=etcd.token)
    _remember_pids(c)
    etcd.wait_healthy(timeout)
    return time.monotonic() - t0


def get(c: Cluster, key: str) -> str | None:
    """The value of ``key`` (None if absent or no member answers)."""
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    for m in _etcd(c).members:
        if m.proc is None:
            continue
        req = urllib.request.Request(f"http://127.0.0.1:{m.client_port}/v3/kv/range",
                                     data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=1) as r:
                kvs = json.loads(r.read()).get("kvs") or []
        except OSError:
            continue
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None
    return None
