"""The faults of the soak, one at a time, each with the moment it *ended*.

Every fault returns a :class:`Fault`: when it began, when it ended (the moment from
which the availability promise counts), what it hit, and how to undo what is left
(``repair``, run after the recovery window). "Ended" per kind:

* ``agent_kill``: SIGKILL of an agent's main PID; ended when systemd runs a new agent;
* ``leader_kill``: hard kill (cgroup.kill) of the engine leader's machine; ended when its
  lease is surely gone (kill + TTL); repaired by booting the machine again;
* ``etcd_member``: SIGKILL of one etcd member, down for TTL, started again (quorum kept);
  ended when it is healthy again;
* ``etcd_restart``: SIGKILL of all members and a restart; ended when all are healthy; the
  outage is kill to healthy;
* ``partition``: a machine's veth down for 2 x TTL; ended at the heal;
* ``slow_stop``: graceful stop of the agent on the machine running the slow-to-stop unit;
  ended when ``systemctl stop`` returned; repaired by starting the agent again;
* ``refused``: ``unitctl start`` of the unit systemd refuses; ended when the command
  returned; repaired by destroying it.

For etcd faults the load is paused and the running units are snapshotted first
(``snapshot``), to check that an outage shorter than the TTL stops none of them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unitctl_testing.chaos import etcd_faults
from unitctl_testing.chaos.load import LoadGenerator
from unitctl_testing.chaos.monitor import SystemdMonitor
from unitctl_testing.chaos.pool import REFUSED_UNIT, SLOW_UNIT
from unitctl_testing.cluster import Cluster
from unitctl_testing.machine_files import AGENT_UNIT

KINDS = ("agent_kill", "leader_kill", "etcd_member", "etcd_restart", "partition",
         "slow_stop", "refused")
ETCD_KINDS = ("etcd_member", "etcd_restart")


@dataclass
class Fault:
    kind: str
    target: str
    start: float
    end: float
    details: dict[str, Any] = field(default_factory=dict)
    outage: float = 0.0  # seconds etcd could not serve (etcd kinds)
    snapshot: list[tuple[str, int, str, float]] = field(default_factory=list)
    repair: Callable[[], None] | None = None

    def to_json(self, t0: float) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "start": round(self.start - t0, 3),
                "end": round(self.end - t0, 3), "outage": round(self.outage, 3),
                **self.details}


@dataclass
class FaultInjector:
    cluster: Cluster
    monitor: SystemdMonitor
    load: LoadGenerator
    rng: random.Random
    ttl: float
    prefix: str = "/unitctl/"

    def inject(self, kind: str) -> Fault:
        verb: Callable[[], Fault] = getattr(self, kind)
        return verb()

    def _running_machines(self) -> list[str]:
        return [n for n in self.cluster.names if self.cluster.machine(n).running()]

    def _agent_pid(self, name: str) -> int:
        r = self.cluster.exec(name, "systemctl", "show", "-p", "MainPID", "--value", AGENT_UNIT,
                              check=False, timeout=10)
        return int(r.stdout.strip() or 0)

    def agent_kill(self) -> Fault:
        name = self.rng.choice(self._running_machines())
        pid = self._agent_pid(name)
        start = time.monotonic()
        self.cluster.exec(name, "kill", "-9", str(pid), check=False, timeout=10)
        deadline = start + 30
        while time.monotonic() < deadline and self._agent_pid(name) in (0, pid):
            time.sleep(0.1)
        return Fault("agent_kill", name, start, time.monotonic(), {"pid": pid})

    def leader_name(self) -> str | None:
        leader = etcd_faults.get(self.cluster, f"{self.prefix}leader")
        for n in self.cluster.names:
            if leader and self.cluster.machine_id(n) == leader:
                return n
        return None

    def leader_kill(self) -> Fault:
        name = self.leader_name()
        found = name is not None
        name = name or self.rng.choice(self._running_machines())
        start = time.monotonic()
        self.cluster.kill(name)
        killed = time.monotonic()
        self.monitor.machine_killed(name, start, killed)
        return Fault("leader_kill", name, start, killed + self.ttl,
                     {"leader_found": found}, repair=lambda: self.cluster.boot(name))

    def _etcd_fault(self, kind: str, act: Callable[[], tuple[str, float]]) -> Fault:
        self.load.pause()
        self.monitor.wait_fresh()  # the last command's effect is in the snapshot
        snap = [(r.machine, r.gen, r.unit, r.start) for r in self.monitor.running()]
        start = time.monotonic()
        target, outage = act()
        return Fault(kind, target, start, time.monotonic(), outage=outage, snapshot=snap,
                     repair=self.load.resume)

    def etcd_member(self) -> Fault:
        idx = self.rng.randrange(len(self.cluster.machine_endpoints))

        def act() -> tuple[str, float]:
            down = etcd_faults.restart_member(self.cluster, idx, down=self.ttl)
            return f"e{idx}", 0.0 if len(self.cluster.machine_endpoints) > 2 else down
        return self._etcd_fault("etcd_member", act)

    def etcd_restart(self) -> Fault:
        return self._etcd_fault("etcd_restart", lambda: ("all", etcd_faults.restart_all(
            self.cluster)))

    def partition(self) -> Fault:
        name = self.rng.choice(self._running_machines())
        start = time.monotonic()
        self.cluster.partition(name)
        time.sleep(2 * self.ttl)
        self.cluster.heal(name)
        return Fault("partition", name, start, time.monotonic())

    def slow_stop(self) -> Fault:
        where = self.monitor.where(SLOW_UNIT)
        if not where:
            self.load.pause()
            try:
                self.load.run(SLOW_UNIT, "start")
            finally:
                self.load.resume()
            deadline = time.monotonic() + 2 * self.ttl + 2
            while not where and time.monotonic() < deadline:
                time.sleep(0.2)
                where = self.monitor.where(SLOW_UNIT)
        name = sorted(where)[0] if where else self.rng.choice(self._running_machines())
        start = time.monotonic()
        r = self.cluster.exec(name, "systemctl", "stop", AGENT_UNIT, check=False, timeout=120)
        return Fault("slow_stop", name, start, time.monotonic(),
                     {"slow_unit_was_here": bool(where), "stop_rc": r.returncode},
                     repair=lambda: self.cluster.start_agent_unit(name))

    def refused(self) -> Fault:
        self.load.pause()
        try:
            cmd = self.load.run(REFUSED_UNIT, "start")
        finally:
            self.load.resume()

        def repair() -> None:
            self.load.pause()
            try:
                self.load.run(REFUSED_UNIT, "destroy")
            finally:
                self.load.resume()
        return Fault("refused", REFUSED_UNIT, cmd.begin, cmd.end, {"start_rc": cmd.rc},
                     repair=repair)
