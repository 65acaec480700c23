"""The deterministic cluster simulator (pure: no I/O, no wall clock, no threads).

A seeded :class:`random.Random` drives everything and time is a virtual clock
in integer milliseconds, so a seed replays exactly. What runs is the real
decision code:

* the engine: :func:`unitctl.scheduler.schedule` on a
  :class:`~unitctl.scheduler.ClusterSnapshot` built from the modelled registry;
* each agent: :func:`unitctl.agent.reconcile.accept` and
  :func:`~unitctl.agent.reconcile.compute_tasks`, whose tasks are applied to a
  model of systemd (files present, units running);
* fencing: :func:`unitctl.agent.fencing.decide` with the peers' reports.

What is modelled: the registry (units, placements, per-machine schedules,
machine keys under leases with TTL expiry), leadership (the leader key lives
under the leader's lease; the lowest reachable machine campaigns first),
agents (keepalive every TTL/4, a schedule watch that wakes only the agent
whose schedule changed, the fence loop every TTL/20), and faults: machine
death (hard kill) and return (reboot, empty /run), partitions (from etcd only,
or fully isolated) and healing, and user changes (desired state, new body).

The run alternates *chaos* windows (faults at random ticks) with *settle*
windows (no new faults) and checks, once the cluster is stable:

1. every launched unit the scheduler can place runs on exactly one live
   machine (partitioned ones included), and every other unit runs nowhere;
   every loaded unit has its file on exactly its machine and does not run;
2. no unit sits on a machine that breaks its rules: MachineID, metadata,
   Conflicts against every co-resident unit, MachineOf peers present;
3. the schedule is a fixed point: scheduling it again gives no decisions.

A violation raises :class:`InvariantViolation` carrying the seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from unitctl.agent.fencing import FENCE_AFTER, PeerReport, Verdict, decide
from unitctl.agent.reconcile import CurrentUnit, DesiredUnit, accept, compute_tasks
from unitctl.agent.tasks import TaskType
from unitctl.engine.target import schedules_of
from unitctl.model import Machine, Requirements, ScheduleEntry, TargetState
from unitctl.scheduler import Action, ClusterSnapshot, Plan, UnitInfo, schedule
from unitctl.sim.workload import make_machines, make_units
from unitctl.xfleet import conflicts_between

LAUNCHED = TargetState.LAUNCHED
LOADED = TargetState.LOADED
INACTIVE = TargetState.INACTIVE


class InvariantViolation(AssertionError):
    """An invariant broke; ``seed`` replays the run."""

    def __init__(self, seed: int, when_ms: int, problems: list[str]) -> None:
        self.seed = seed
        self.when_ms = when_ms
        self.problems = problems
        head = "; ".join(problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"seed {seed}: invariant violated at t={when_ms / 1000:.1f}s: "
                         f"{head}{more}")


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


@dataclass(slots=True)
class Node:
    """One machine: its liveness, connectivity, lease and local systemd."""

    machine: Machine
    alive: bool = True
    #: "" = reachable; "etcd" = cut off from etcd only; "isolated" = from everything.
    partition: str = ""
    lease_expires: int = -1  # -1: not registered
    next_refresh: int = 0
    last_contact: int = 0
    fenced: bool = False
    seen_version: int = -1
    files: dict[str, str] = field(default_factory=dict)  # name -> hash
    started: set[tuple[str, str]] = field(default_factory=set)
    running: set[str] = field(default_factory=set)

    @property
    def reachable(self) -> bool:
        return self.alive and not self.partition


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
    checks: int = 0
    settle_ms_max: int = 0
    events: dict[str, int] = field(default_factory=dict)


class Simulation:
    """One seeded run. Use :meth:`run`; :attr:`trace` is what the digest hashes."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.now = 0
        machines = make_machines(cfg.machines)
        self.nodes: dict[str, Node] = {mid: Node(m) for mid, m in machines.items()}
        self.reqs: dict[str, Requirements] = make_units(cfg.units, cfg.machines, cfg.globals_)
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

    # ------------------------------------------------------------------ driver
    def run(self) -> Stats:
        """Bring the cluster up, then run ``steps`` chaos/settle epochs."""
        self._settle("boot")
        for _ in range(self.cfg.steps):
            self.stats.epochs += 1
            window = self.rng.randrange(1, 2 * self.cfg.ttl_ms // self.cfg.tick_ms + 1)
            rate = self.cfg.faults / window
            for _ in range(window):
                if self.rng.random() < rate:
                    self._inject()
                self._tick()
            self._settle(f"epoch {self.stats.epochs}")
        self.stats.virtual_ms = self.now
        return self.stats

    def digest(self) -> str:
        """A hash of everything that happened: equal digests, identical runs."""
        return self.trace.hexdigest()[:16]

    def _log(self, *parts: object) -> None:
        self.trace.update(f"{self.now} {' '.join(map(str, parts))}\n".encode())

    # ----------------------------------------------------------------- faults
    def _inject(self) -> None:
        ids = sorted(self.nodes)
        down = [m for m in ids if not self.nodes[m].reachable]
        room = len(down) < max(1, int(self.cfg.max_down * len(ids)))
        kinds = ["desired", "update"]
        if room:
            kinds += ["kill", "kill", "partition", "partition"]
        if any(not self.nodes[m].alive for m in ids):
            kinds += ["revive", "revive"]
        if any(self.nodes[m].alive and self.nodes[m].partition for m in ids):
            kinds += ["heal", "heal"]
        kind = self.rng.choice(kinds)
        self.stats.events[kind] = self.stats.events.get(kind, 0) + 1
        if kind == "kill":
            node = self.nodes[self.rng.choice([m for m in ids if self.nodes[m].reachable])]
            node.alive = False
            node.partition = ""
            node.files.clear()  # the unit directory lives in /run
            node.running.clear()
            node.started.clear()
            self._log("kill", node.machine.id[:8])
        elif kind == "revive":
            node = self.nodes[self.rng.choice([m for m in ids if not self.nodes[m].alive])]
            node.alive = True
            node.fenced = False
            node.next_refresh = self.now  # registers on the next tick
            node.seen_version = -1
            self._log("revive", node.machine.id[:8])
        elif kind == "partition":
            node = self.nodes[self.rng.choice([m for m in ids if self.nodes[m].reachable])]
            node.partition = self.rng.choice(["etcd", "isolated"])
            self._log("partition", node.machine.id[:8], node.partition)
        elif kind == "heal":
            node = self.nodes[self.rng.choice(
                [m for m in ids if self.nodes[m].alive and self.nodes[m].partition])]
            node.partition = ""
            node.next_refresh = self.now
            self._log("heal", node.machine.id[:8])
        elif kind == "desired":
            name = self.rng.choice(self.unit_names)
            state = self.rng.choice([LAUNCHED, LAUNCHED, LOADED, INACTIVE])
            old = self.units[name]
            self.units[name] = UnitInfo(name, old.hash, state, old.req)
            self.dirty = True
            self._log("desired", name, state.value)
        else:
            name = self.rng.choice(self.unit_names)
            old = self.units[name]
            version = int(old.hash.rsplit("#", 1)[1]) + 1
            self.units[name] = UnitInfo(name, f"{name}#{version}", old.desired, old.req)
            self.dirty = True
            self._log("update", name, version)

    # ------------------------------------------------------------------- time
    def _tick(self) -> None:
        self.now += self.cfg.tick_ms
        self._sessions()
        self._fence()
        self._engine()
        self._agents()

    def _sessions(self) -> None:
        """Keepalives, re-registration, lease expiry (the machine key goes with it)."""
        ttl = self.cfg.ttl_ms
        for mid in sorted(self.nodes):
            node = self.nodes[mid]
            if node.reachable and self.now >= node.next_refresh:
                if mid not in self.registered or self.now >= node.lease_expires:
                    self.registered.add(mid)
                    self.dirty = True
                    node.seen_version = -1  # a new session reads its schedule
                    self._log("register", mid[:8])
                node.lease_expires = self.now + ttl
                node.next_refresh = self.now + max(200, ttl // 4)
                if node.fenced:  # etcd reachable again: lift the fence
                    node.fenced = False
                    node.started.clear()
                    node.seen_version = -1
                    self._log("unfence", mid[:8])
                node.last_contact = self.now
            if mid in self.registered and self.now >= node.lease_expires:
                self.registered.discard(mid)
                self.dirty = True
                self._log("expire", mid[:8])
        if self.leader is not None and self.leader not in self.registered:
            self.leader = None
        if self.leader is None:
            live = [m for m in sorted(self.registered) if self.nodes[m].reachable]
            if live:
                self.leader = live[0]
                self.dirty = True
                self._log("leader", self.leader[:8])

    def _fence(self) -> None:
        """The fence loop of every live agent cut off from etcd (every TTL/20)."""
        ttl = self.cfg.ttl_ms
        tick = self.cfg.tick_ms
        step = max(tick, ttl // 20 // tick * tick)
        if not self.cfg.fencing or self.now % step:
            return
        for mid in sorted(self.nodes):
            node = self.nodes[mid]
            age = self.now - node.last_contact
            if not node.alive or node.fenced or age < FENCE_AFTER * ttl:
                continue
            peers = [p for p in sorted(self.nodes) if p != mid]
            reports = [] if node.partition == "isolated" else [
                PeerReport(p, (self.now - self.nodes[p].last_contact) / 1000)
                for p in peers
                if self.nodes[p].alive and self.nodes[p].partition != "isolated"]
            verdict, _why = decide(age / 1000, ttl / 1000, ttl / 8000, len(peers), reports)
            if verdict is Verdict.FENCE:
                node.fenced = True
                node.running.clear()
                node.started.clear()
                self.stats.fences += 1
                self._log("fence", mid[:8])

    # ----------------------------------------------------------------- engine
    def snapshot(self) -> ClusterSnapshot:
        """What the engine reads: registered machines, units, placements."""
        machines = {m: self.nodes[m].machine for m in sorted(self.registered)}
        return ClusterSnapshot(machines, self.units, dict(self.placements))

    def _engine(self) -> None:
        if not self.dirty or self.leader is None or not self.nodes[self.leader].reachable:
            return
        self.dirty = False
        plan = schedule(self.snapshot())
        self.last_plan = plan
        self.stats.rounds += 1
        self.stats.decisions += len(plan.decisions)
        self.placements = dict(plan.placements)
        wanted = schedules_of(plan, self.units)
        changed = 0
        woken: list[str] = []
        for machine in sorted(set(wanted) | set(self.schedules)):
            have, want = self.schedules.get(machine, {}), wanted.get(machine, {})
            if have != want:
                changed += sum(1 for n in set(have) | set(want) if have.get(n) != want.get(n))
                self.versions[machine] = self.versions.get(machine, 0) + 1
                woken.append(machine)
        self.schedules = wanted
        self.stats.schedule_changes += changed
        moved = {d.unit for d in plan.decisions}
        if len(moved) == 1 and not any(self.units[u].req.is_global for u in moved):
            self.stats.max_wakes_single = max(self.stats.max_wakes_single, len(woken))
        if plan.decisions:
            self._log("round", len(plan.decisions), ",".join(
                f"{d.action.value[0]}{d.unit}@{d.machine[:8]}" for d in plan.decisions))

    # ----------------------------------------------------------------- agents
    def _agents(self) -> None:
        for mid in sorted(self.nodes):
            node = self.nodes[mid]
            if (not node.reachable or mid not in self.registered
                    or node.seen_version == self.versions.get(mid, 0)):
                continue
            node.seen_version = self.versions.get(mid, 0)
            self.stats.wakes += 1
            self._reconcile(node)

    def _reconcile(self, node: Node) -> None:
        """The agent's reconcile: desired from its schedule, accept, compute, execute."""
        desired = {
            name: DesiredUnit(name, e.hash, e.desired, self.reqs[name])
            for name, e in self.schedules.get(node.machine.id, {}).items()}
        for name in accept(node.machine, desired):
            del desired[name]
        current = {n: CurrentUnit(n, h, (n, h) in node.started) for n, h in node.files.items()}
        tasks = compute_tasks(desired, current)
        self.stats.tasks += len(tasks)
        for task in tasks:
            name = task.name
            if task.type is TaskType.UNLOAD:
                node.files.pop(name, None)
                node.running.discard(name)
                node.started = {s for s in node.started if s[0] != name}
            elif task.type is TaskType.LOAD:
                node.files[name] = desired[name].hash
            elif task.type is TaskType.STOP:
                node.running.discard(name)
                node.started = {s for s in node.started if s[0] != name}
            elif task.type is TaskType.START:
                node.running.add(name)
                node.started.add((name, desired[name].hash))

    # --------------------------------------------------------------- settling
    def _stable(self) -> bool:
        if self.dirty or self.leader is None:
            return False
        for mid, node in self.nodes.items():
            if mid in self.registered and not node.reachable:
                return False  # a lease still to expire
            if node.reachable and (mid not in self.registered
                                   or node.seen_version != self.versions.get(mid, 0)):
                return False
        return True

    def _settle(self, label: str) -> None:
        start = self.now
        limit = start + 4 * self.cfg.ttl_ms + 10 * self.cfg.tick_ms
        while not self._stable():
            if self.now > limit:
                raise InvariantViolation(self.cfg.seed, self.now,
                                         [f"{label}: not stable {limit - start} ms after "
                                          "the last fault"])
            self._tick()
        self.stats.settle_ms_max = max(self.stats.settle_ms_max, self.now - start)
        self.check()
        self._log("stable", label)

    # -------------------------------------------------------------- invariants
    def check(self) -> None:
        """Check every invariant now; raise :class:`InvariantViolation` if one breaks."""
        self.stats.checks += 1
        problems = self._check_once() + self._check_rules() + self._check_fixed_point()
        if problems:
            raise InvariantViolation(self.cfg.seed, self.now, problems)

    def _check_once(self) -> list[str]:
        problems: list[str] = []
        where: dict[str, list[str]] = {}
        loaded_at: dict[str, list[str]] = {}
        for mid in sorted(self.nodes):
            node = self.nodes[mid]
            for name in node.running:
                where.setdefault(name, []).append(mid[:8])
            for name in node.files if node.reachable else ():
                loaded_at.setdefault(name, []).append(mid[:8])
        plan = self.last_plan
        refused = {mid: accept(self.nodes[mid].machine, self._desired_of(mid))
                   for mid in sorted(self.registered)}
        for name in self.unit_names:
            unit = self.units[name]
            runs = where.get(name, [])
            if unit.req.is_global:
                expect = 0 if unit.desired is not LAUNCHED or plan is None else len(
                    [m for m in plan.global_placements.get(name, ())
                     if name not in refused.get(m, {})])
                if len(runs) != expect:
                    problems.append(f"global {name} runs on {len(runs)} machines, "
                                    f"expected {expect}")
                continue
            placed = self.placements.get(name)
            if unit.desired is LAUNCHED:
                expect_on = [placed[:8]] if placed else []
                if sorted(runs) != expect_on:
                    problems.append(f"launched {name} runs on {runs or 'nothing'}, "
                                    f"scheduled to {placed and placed[:8]}")
            elif runs:
                problems.append(f"{unit.desired.value} {name} runs on {runs}")
            files = loaded_at.get(name, [])
            if unit.desired is not INACTIVE and files != ([placed[:8]] if placed else []):
                problems.append(f"{name} loaded on {files}, scheduled to {placed and placed[:8]}")
            if unit.desired is INACTIVE and files:
                problems.append(f"inactive {name} still loaded on {files}")
        return problems

    def _desired_of(self, mid: str) -> dict[str, DesiredUnit]:
        return {n: DesiredUnit(n, e.hash, e.desired, self.reqs[n])
                for n, e in self.schedules.get(mid, {}).items()}

    def _check_rules(self) -> list[str]:
        """Independent of the scheduler: each machine's units against their own rules."""
        problems: list[str] = []
        for mid in sorted(self.nodes):
            node = self.nodes[mid]
            present = sorted(set(node.files) | node.running)
            for name in present:
                req = self.reqs[name]
                m = node.machine
                if req.machine_id is not None and req.machine_id not in (m.id, m.short_id):
                    problems.append(f"{name} on {mid[:8]} breaks MachineID={req.machine_id}")
                for key, values in req.metadata.items():
                    if m.metadata.get(key) not in values:
                        problems.append(f"{name} on {mid[:8]} breaks metadata {key}")
                for peer in req.machine_of:
                    if peer != name and peer not in node.files:
                        problems.append(f"{name} on {mid[:8]} without its MachineOf {peer}")
            with_rules = [n for n in present if self.reqs[n].conflicts]
            for a in with_rules:
                for b in present:
                    pair = a < b or (b not in with_rules and a != b)
                    if pair and conflicts_between(a, self.reqs[a], b, self.reqs[b]):
                        problems.append(f"{a} and {b} conflict on {mid[:8]}")
        return problems

    def _check_fixed_point(self) -> list[str]:
        plan = schedule(self.snapshot())
        moves = [f"{d.action.value} {d.unit}" for d in plan.decisions]
        return [f"not a fixed point: {', '.join(moves[:3])}"] if moves else []


@dataclass(frozen=True, slots=True)
class SimResult:
    """A finished run: its config, counters and digest."""

    config: SimConfig
    stats: Stats
    digest: str
    running: int  # unit instances running at the end
    machines_up: int

    def summary(self) -> Mapping[str, object]:
        s = self.stats
        return {
            "seed": self.config.seed, "machines": self.config.machines,
            "units": self.config.units, "epochs": s.epochs,
            "virtual_s": round(s.virtual_ms / 1000, 1), "engine_rounds": s.rounds,
            "decisions": s.decisions, "schedule_changes": s.schedule_changes,
            "agent_wakes": s.wakes, "max_wakes_single_unit_round": s.max_wakes_single,
            "agent_tasks": s.tasks, "fences": s.fences, "invariant_checks": s.checks,
            "max_settle_s": round(s.settle_ms_max / 1000, 1),
            "events": dict(sorted(s.events.items())), "running": self.running,
            "machines_up": self.machines_up, "digest": self.digest,
        }


def simulate(cfg: SimConfig) -> SimResult:
    """Run one simulation; raise :class:`InvariantViolation` (with the seed) on failure."""
    sim = Simulation(cfg)
    stats = sim.run()
    return SimResult(cfg, stats, sim.digest(),
                     sum(len(n.running) for n in sim.nodes.values()),
                     sum(1 for n in sim.nodes.values() if n.reachable))


__all__ = ["Action", "InvariantViolation", "SimConfig", "SimResult", "Simulation", "simulate"]
