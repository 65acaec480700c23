"""The simulated world: what the simulator knows at one instant of virtual time.

It holds the configuration, every machine (:class:`Node`: liveness,
connectivity, lease, fence, and its local systemd and agent executor), the
modelled registry (units, registered machines, placements, per-machine
schedules and their versions, the leader), the virtual clock, the counters
(:class:`Stats`) and the trace that the run's digest hashes. Pure: no I/O, no
wall clock; a seeded :class:`random.Random` is the only source of chance.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from unitctl.agent.executor import Executor
from unitctl.agent.reconcile import DesiredUnit
from unitctl.model import DesiredState, Machine, Requirements, ScheduleEntry
from unitctl.scheduler import ClusterSnapshot, Plan, UnitInfo
from unitctl.sim.ledger import RunLedger
from unitctl.sim.systemd import RunningUnits, SimSystemd
from unitctl.sim.workload import make_machines, make_units

LAUNCHED = DesiredState.LAUNCHED
LOADED = DesiredState.LOADED
INACTIVE = DesiredState.INACTIVE


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What to simulate.

    Attributes:
        machines, units: cluster size (units follow :mod:`unitctl.sim.workload`).
        seed: the only source of randomness.
        steps: chaos/settle epochs to run.
        ttl_ms: agent lease TTL.
        tick_ms: virtual clock resolution (one engine round at most per tick).
        faults: mean faults injected per chaos window.
        max_down: at most this fraction of machines dead or partitioned at once.
        fencing: False disables the fence (to show the checker catches it).
        globals_: include global units in the mix.
        max_globals: at most this many global units (None: 1 % of the units); a
            global unit runs on every machine (see :mod:`unitctl.sim.workload`).
        resources: units need CPU, memory and host ports, machines have
            capacities (:mod:`unitctl.sim.workload`).
        dynamic_ports: with ``resources``, some units ask for ``@PORT`` host ports.
    """

    machines: int = 20
    units: int = 200
    seed: int = 0
    steps: int = 10
    ttl_ms: int = 10_000
    tick_ms: int = 100
    faults: float = 3.0
    max_down: float = 0.3
    fencing: bool = True
    globals_: bool = True
    max_globals: int | None = 10
    resources: bool = True
    dynamic_ports: bool = True


@dataclass(slots=True)
class Node:
    """One machine: its liveness, connectivity, lease, local systemd and executor."""

    machine: Machine
    systemd: SimSystemd
    alive: bool = True
    #: "" = reachable; "etcd" = cut off from etcd only; "isolated" = from everything.
    partition: str = ""
    lease_expires: int = -1  # -1: not registered
    next_refresh: int = 0
    last_contact: int = 0
    fenced: bool = False
    #: While holding: the fence's next question to the peers, and its pause (ms).
    next_ask: int = 0
    hold_ms: int = 0
    seen_version: int = -1
    #: The agent's real executor, over this machine's systemd (and its drop-ins).
    executor: Executor = field(init=False)

    def __post_init__(self) -> None:
        self.executor = Executor(self.systemd)
        self.executor.port_dropins = self.systemd.dropins

    @property
    def reachable(self) -> bool:
        return self.alive and not self.partition

    @property
    def files(self) -> dict[str, str]:
        """Unit files present: name -> hash."""
        return self.systemd.files

    @property
    def running(self) -> RunningUnits:
        """Units running."""
        return self.systemd.running

    def stop_everything(self) -> None:
        """Stop every unit and forget every start (a fence); files stay."""
        self.systemd.running.clear()
        self.executor.forget_all()


@dataclass(slots=True)
class Stats:
    """Counters reported at the end (all deterministic)."""

    epochs: int = 0
    virtual_ms: int = 0
    rounds: int = 0
    decisions: int = 0
    schedule_changes: int = 0  # (machine, unit) entries added/changed/removed
    wakes: int = 0  # agent reconciles triggered by their schedule changing
    max_wakes_single: int = 0  # most agents woken by a round that moved one unit
    tasks: int = 0
    fences: int = 0
    checks: int = 0  # full checks, once stable
    tick_checks: int = 0  # "never twice" checks, one per tick
    settle_ms_max: int = 0
    events: dict[str, int] = field(default_factory=dict)


class World:
    """The machines, the modelled registry, the clock, the counters and the trace."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.now = 0
        machines = make_machines(cfg.machines, capacities=cfg.resources)
        self.reqs: dict[str, Requirements] = make_units(
            cfg.units, cfg.machines, cfg.globals_, cfg.resources, cfg.max_globals,
            cfg.dynamic_ports)
        #: What runs where, from every machine's systemd records.
        self.ledger = RunLedger(lambda name: self.reqs[name].needs)
        self.nodes: dict[str, Node] = {
            mid: Node(m, SimSystemd(mid, self.ledger)) for mid, m in machines.items()}
        #: The machine ids, sorted (every loop over machines goes in this order).
        self.ids = sorted(self.nodes)
        self.unit_names = sorted(self.reqs)
        # the registry
        self.units: dict[str, UnitInfo] = {
            n: UnitInfo(n, f"{n}#0", LAUNCHED, r) for n, r in self.reqs.items()}
        self.registered: set[str] = set()
        self.placements: dict[str, str] = {}
        self.schedules: dict[str, dict[str, ScheduleEntry]] = {}
        self.versions: dict[str, int] = {}  # machine -> schedule version
        self.leader: str | None = None
        self.dirty = True
        self.last_plan: Plan | None = None
        self.stats = Stats()
        self.trace = hashlib.sha256()

    def log(self, *parts: object) -> None:
        """Add one event to the trace (what :meth:`digest` hashes)."""
        self.trace.update(f"{self.now} {' '.join(map(str, parts))}\n".encode())

    def digest(self) -> str:
        """A hash of everything that happened: equal digests, identical runs."""
        return self.trace.hexdigest()[:16]

    def snapshot(self) -> ClusterSnapshot:
        """What the engine reads: registered machines, units, placements."""
        machines = {m: self.nodes[m].machine for m in sorted(self.registered)}
        return ClusterSnapshot(machines, self.units, dict(self.placements),
                               allocations=self.allocations())

    def allocations(self) -> dict[str, dict[str, dict[str, int]]]:
        """The host ports the schedule entries hold: unit -> machine -> name -> port
        (as :func:`unitctl.engine.planned.allocations_of` reads them from the registry)."""
        found: dict[str, dict[str, dict[str, int]]] = {}
        for machine, entries in self.schedules.items():
            for name, entry in entries.items():
                if entry.ports:
                    found.setdefault(name, {})[machine] = dict(entry.ports)
        return found

    def desired_of(self, mid: str) -> dict[str, DesiredUnit]:
        """Machine ``mid``'s schedule, as its agent sees it."""
        return {n: DesiredUnit(n, e.hash, e.desired, self.reqs[n], ports=e.ports)
                for n, e in self.schedules.get(mid, {}).items()}
