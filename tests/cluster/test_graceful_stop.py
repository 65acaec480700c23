"""A graceful agent stop never leaves a unit running on two machines (issue 10, defect 4).

Two real systemd machines, agent TTL 3 s. Every unit of the machine being
stopped takes seconds to stop (``ExecStop=/bin/sleep``), so stopping them one by
one outlasts the TTL. "Never twice" is checked from systemd's own records in
every machine's journal: each run of a unit is the interval from its start job
("Starting …") to the end of its stop job ("Stopped …"), in realtime
microseconds (the machines share the host's clock), and no two runs of a unit
on different machines may overlap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from tests.cluster.helpers import unitctl, wait, where_active, write_unit
from unitctl_testing.cluster import Cluster

TTL = 3.0
_Factory = Callable[..., Cluster]
#: systemd's catalogue: a start job began ("Starting", not logged for Type=simple),
#: a start job finished ("Started"), a stop job finished ("Stopped").
STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
STARTED = "39f53479d3a045ac8e11786248231fbf"
STOPPED = "9d1aaa27d60140bd96365438aad20286"
Run = tuple[str, float, float]  # machine, from, to (inf while running)


def _runs(c: Cluster, machine: str, unit: str) -> list[Run]:
    """Runs of ``unit`` on ``machine``, from systemd's journal (pid 1's job messages)."""
    out = c.exec(machine, "journalctl", "--no-pager", "-o", "json", "_PID=1",
                 f"UNIT={unit}").stdout
    runs: list[Run] = []
    begin: float | None = None
    for line in out.splitlines():
        rec = json.loads(line)
        at = int(rec["__REALTIME_TIMESTAMP"]) / 1e6
        if rec.get("MESSAGE_ID") in (STARTING, STARTED) and begin is None:
            begin = at
        elif rec.get("MESSAGE_ID") == STOPPED and begin is not None:
            runs.append((machine, begin, at))
            begin = None
    if begin is not None:
        runs.append((machine, begin, float("inf")))
    return runs


def _overlaps(c: Cluster, unit: str) -> list[str]:
    """Pairs of runs of ``unit`` on different machines that overlap in time."""
    runs = sorted((r for m in c.names for r in _runs(c, m, unit)), key=lambda r: r[1])
    bad = []
    for i, (m1, _b1, e1) in enumerate(runs):
        for m2, b2, _e2 in runs[i + 1:]:
            if m2 != m1 and b2 < e1:
                bad.append(f"{unit}: on {m1} until {e1:.3f} and on {m2} from {b2:.3f} "
                           f"({e1 - b2:.2f}s overlap)")
    return bad


def _all_on(c: Cluster, tmp: Path, machine: str, names: list[str], stop_secs: float) -> None:
    """Start ``names`` (each ``stop_secs`` to stop) on ``machine``: the other agent waits."""
    others = [m for m in c.names if m != machine]
    for m in others:
        c.stop_agent(m)
    body = ("[Unit]\nDescription=slow to stop\n[Service]\nExecStart=/bin/sleep infinity\n"
            f"ExecStop=/bin/sleep {stop_secs:g}\n")
    unitctl(c, "start", *[write_unit(tmp, n, body) for n in names])
    assert all(where_active(c, n) == {machine} for n in names)
    for m in others:
        c.start_agent_unit(m)
    wait(lambda: len(unitctl(c, "list-machines").stdout.strip().splitlines()) == len(c.names) + 1,
         what="every agent registered")


def _set_stop_budget(c: Cluster, machine: str, budget: str) -> None:
    c.exec(machine, "sh", "-c", f"echo 'stop_budget = {budget}' >> /etc/unitctl/unitctl.conf")
    c.systemctl(machine, "restart", "unitctl-agent")


def test_graceful_stop_of_slow_units_never_runs_one_twice(cluster_factory: _Factory,
                                                         tmp_path: Path) -> None:
    """4 units of 3 s each: one by one 12 s, far past the TTL; in parallel about 3 s."""
    c = cluster_factory(2, etcd_size=1, agent_ttl=f"{TTL:g}s")
    names = [f"slow{i}.service" for i in range(4)]
    _all_on(c, tmp_path, "m1", names, 3)
    c.stop_agent("m1")
    wait(lambda: all(where_active(c, n) == {"m2"} for n in names), timeout=30,
         what="every unit active on m2")
    assert [bad for n in names for bad in _overlaps(c, n)] == []
    journal = c.journal("m1", "-u", "unitctl-agent")
    assert "every unit stopped; revoking the lease" in journal, journal[-3000:]


def test_stop_budget_exhausted_leaves_the_lease_to_expire(cluster_factory: _Factory,
                                                         tmp_path: Path) -> None:
    """Units slower than the budget: the agent exits without revoking; they move
    only after the lease expired, by when they are stopped."""
    c = cluster_factory(2, etcd_size=1, agent_ttl=f"{TTL:g}s")
    _set_stop_budget(c, "m1", "1.5s")
    names = [f"late{i}.service" for i in range(3)]
    _all_on(c, tmp_path, "m1", names, 3)
    t0 = time.monotonic()
    c.stop_agent("m1")
    wait(lambda: all(where_active(c, n) == {"m2"} for n in names), timeout=30,
         what="every unit active on m2")
    print(f"budget exhausted: units active on m2 {time.monotonic() - t0:.2f}s after the stop")
    assert [bad for n in names for bad in _overlaps(c, n)] == []
    journal = c.journal("m1", "-u", "unitctl-agent")
    assert "stop budget of 1.5s ran out" in journal, journal[-3000:]
    assert "every unit stopped; revoking" not in journal.split("stop budget of 1.5s ran out")[-1]
