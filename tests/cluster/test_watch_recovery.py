"""Watches after a restart of the whole 3-member etcd, on real systemd machines
(issue 10, defect 1).

Right after every member was killed and started again, a unit that
``unitctl start`` submits runs within 2 s, and the unit of a machine
hard-killed right after runs elsewhere within TTL + 1 s of etcd expiring the
machine's lease. Both are read from systemd's own record inside the machines
(``ExecMainStartTimestampMonotonic``: nspawn machines share the host's
monotonic clock), not from etcd.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.cluster.helpers import service, unitctl, wait, where_active, write_unit
from tests.integration.test_watch_recovery import ETCD_EXPIRY_LAG, restart_all
from unitctl_testing.cluster import Cluster

TTL = 3.0


def started_at(c: Cluster, machine: str, unit: str) -> float:
    """When systemd started ``unit``'s main process, on this host's monotonic clock."""
    r = c.exec(machine, "systemctl", "show", "-p", "ExecMainStartTimestampMonotonic",
               "--value", unit)
    return int(r.stdout.strip()) / 1e6


def restart_etcd(c: Cluster) -> None:
    assert c.etcd is not None and len(c.etcd.members) == 3
    restart_all(c.etcd)


def test_after_an_etcd_restart_starts_and_moves_stay_prompt(
        cluster_factory: Callable[..., Cluster], tmp_path: Path) -> None:
    c = cluster_factory(3, etcd_size=3)
    first = [write_unit(tmp_path, f"w{i}.service", service()) for i in range(3)]
    unitctl(c, "start", *first)

    restart_etcd(c)
    asked = time.monotonic()
    unitctl(c, "start", "--no-block", write_unit(tmp_path, "after.service", service()))
    wait(lambda: bool(where_active(c, "after.service")), timeout=10, step=0.05,
         what="after.service active")
    (where,) = where_active(c, "after.service")
    assert started_at(c, where, "after.service") - asked <= 2.0

    lost = ["after.service", *(f"w{i}.service" for i in range(3)
                               if where_active(c, f"w{i}.service", [where]))]
    alive = [m for m in c.names if m != where]
    restart_etcd(c)
    killed = time.monotonic()
    c.kill(where)
    wait(lambda: all(where_active(c, n, alive) for n in lost), timeout=TTL + 10, step=0.05,
         what="the killed machine's units active elsewhere")
    for name in lost:
        (now_on,) = where_active(c, name, alive)
        assert started_at(c, now_on, name) - killed <= TTL + ETCD_EXPIRY_LAG + 1.0
