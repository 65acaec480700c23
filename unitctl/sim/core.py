"""The deterministic cluster simulator (pure: no I/O, no wall clock, no threads).

A seeded :class:`random.Random` drives everything and time is a virtual clock
in integer milliseconds, so a seed replays exactly. What runs is the real
decision code:

* the engine: :func:`unitctl.scheduler.schedule` on a
  :class:`~unitctl.scheduler.ClusterSnapshot` built from the modelled registry;
* each agent: :func:`unitctl.agent.reconcile.accept` and
  :func:`~unitctl.agent.reconcile.compute_tasks`, whose tasks the agent's own
  :class:`~unitctl.agent.executor.Executor` applies to a model of systemd
  (files present, units running);
* fencing: :func:`unitctl.agent.fencing.decide` with the peers' reports.

The parts: :mod:`.world` (the state), :mod:`.systemd` (the modelled systemd),
:mod:`.actors` (sessions, fence, engine and agents per tick), :mod:`.faults`
(machine death and return, partitions and healing, user changes) and
:mod:`.invariants` (what must hold once stable). This module is the driver.

The run alternates *chaos* windows (faults at random ticks) with *settle*
windows (no new faults). "Never twice" is checked after every tick, chaos
included; the other invariants once the cluster is stable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from unitctl.scheduler import Action
from unitctl.sim import actors, faults, invariants
from unitctl.sim.invariants import InvariantViolation
from unitctl.sim.world import Node, SimConfig, Stats, World

__all__ = ["Action", "InvariantViolation", "Node", "SimConfig", "SimResult", "Simulation",
           "Stats", "simulate"]


class Simulation(World):
    """One seeded run. Use :meth:`run`; :attr:`trace` is what the digest hashes."""

    def run(self) -> Stats:
        """Bring the cluster up, then run ``steps`` chaos/settle epochs."""
        self._settle("boot")
        for _ in range(self.cfg.steps):
            self.stats.epochs += 1
            window = self.rng.randrange(1, 2 * self.cfg.ttl_ms // self.cfg.tick_ms + 1)
            rate = self.cfg.faults / window
            for _ in range(window):
                if self.rng.random() < rate:
                    faults.inject(self)
                self._tick()
            self._settle(f"epoch {self.stats.epochs}")
        self.stats.virtual_ms = self.now
        return self.stats

    def result(self) -> SimResult:
        """The finished run: config, counters, digest, instances running, machines up."""
        return SimResult(self.cfg, self.stats, self.digest(),
                         sum(len(n.running) for n in self.nodes.values()),
                         sum(1 for n in self.nodes.values() if n.reachable))

    def check(self) -> None:
        """Check every invariant now; raise :class:`InvariantViolation` if one breaks."""
        invariants.check(self)

    def _tick(self) -> None:
        """One tick of every process, then the check that must hold at every instant."""
        actors.tick(self)
        invariants.check_tick(self)

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
        self.log("stable", label)


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
            "tick_checks": s.tick_checks,
            "max_settle_s": round(s.settle_ms_max / 1000, 1),
            "events": dict(sorted(s.events.items())), "running": self.running,
            "machines_up": self.machines_up, "digest": self.digest,
        }


def simulate(cfg: SimConfig) -> SimResult:
    """Run one simulation; raise :class:`InvariantViolation` (with the seed) on failure."""
    sim = Simulation(cfg)
    sim.run()
    return sim.result()
