"""The simulator at growing sizes, and many small seeds (issue 12, item 6; issue 13).

Each size runs one :class:`unitctl.sim.core.Simulation` (real ``schedule``,
``accept``, ``compute_tasks`` and fencing ``decide`` over a virtual clock,
chaos epochs included, every per-tick check on) and records, per size:

* the wall time of every engine round's ``schedule()`` call and of every
  simulated tick (p50 / p99 / max), the full checks once stable, and the
  whole run;
* the peak RSS of this process after it (sizes run smallest first, so the
  peak is the largest run's so far) and the simulator's own counters.

The growth sizes use the rule mix without resources (``resources=False``: no
CPU/memory/port needs, machines without capacity), the workload the scale
runs always used; the resource sizes use the issue 13 workload (needs,
capacities, fixed and ``@PORT`` ports), whose placement by room costs the
scheduler every machine per unit with needs (reported, not hidden: see
docs/benchmarks.md). ``violations`` is counted from the runs: a run that
raises :class:`~unitctl.sim.core.InvariantViolation` adds one, with its message.

Usage: ``python -m bench.sim_scale [--sizes 100:1000,1000:10000,10000:100000]
[--resource-sizes 100:1000,300:3000] [--steps 3] [--seeds 50]``
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any
from unittest import mock

from unitctl.scheduler import ClusterSnapshot, Plan, schedule
from unitctl.sim import SimConfig, actors
from unitctl.sim.core import InvariantViolation, Simulation

DEFAULT_SIZES = "100:1000,1000:10000,10000:100000"
DEFAULT_RESOURCE_SIZES = "100:1000,300:3000"


class TimedSimulation(Simulation):
    """The simulation, with the wall time of each tick and each full check noted."""

    def __init__(self, cfg: SimConfig) -> None:
        super().__init__(cfg)
        self.tick_s: list[float] = []
        self.check_s: list[float] = []

    def _tick(self) -> None:
        t0 = time.perf_counter()
        super()._tick()
        self.tick_s.append(time.perf_counter() - t0)

    def check(self) -> None:
        t0 = time.perf_counter()
        super().check()
        self.check_s.append(time.perf_counter() - t0)


def _spread(values: list[float]) -> dict[str, float]:
    """p50 / p99 / max in milliseconds."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)
    return {"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(1000 * ordered[-1], 2),
            "count": len(ordered)}


def _one(cfg: SimConfig) -> dict[str, Any]:
    """One simulation: its summary, its round/tick/check times and the peak RSS after it."""
    rounds: list[float] = []
    real_schedule = schedule

    def timed_schedule(snapshot: ClusterSnapshot) -> Plan:
        t0 = time.perf_counter()
        plan = real_schedule(snapshot)
        rounds.append(time.perf_counter() - t0)
        return plan

    sim = TimedSimulation(cfg)
    t0 = time.perf_counter()
    try:
        with mock.patch.object(actors, "schedule", timed_schedule):
            sim.run()
        summary: dict[str, Any] = {**sim.result().summary()}
    except InvariantViolation as exc:
        summary = {"seed": cfg.seed, "machines": cfg.machines, "units": cfg.units,
                   "violation": str(exc)}
    wall = time.perf_counter() - t0
    summary.update(resources=cfg.resources, max_globals=cfg.max_globals,
                   wall_s=round(wall, 2), schedule_round=_spread(rounds),
                   tick=_spread(sim.tick_s), full_check=_spread(sim.check_s),
                   peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                      1))
    return summary


def _sizes(text: str) -> list[tuple[int, int]]:
    return [(int(m), int(u)) for m, u in (s.split(":") for s in text.split(",") if s)]


def run(sizes: list[tuple[int, int]], resource_sizes: list[tuple[int, int]], steps: int,
        seeds: int) -> dict[str, Any]:
    """The growth runs (smallest first: the peak RSS only grows), the resource runs
    and the seed sweep (20 machines, 200 units, the full issue 13 workload)."""
    growth = [_one(SimConfig(machines=m, units=u, seed=1, steps=steps, resources=False))
              for m, u in sizes]
    with_resources = [_one(SimConfig(machines=m, units=u, seed=1, steps=steps))
                      for m, u in resource_sizes]
    sweep_t0 = time.perf_counter()
    sweep = [_one(SimConfig(machines=20, units=200, seed=s, steps=20)) for s in range(seeds)]
    failed = [r for r in growth + with_resources + sweep if "violation" in r]
    return {"growth": growth, "resources": with_resources, "steps": steps,
            "seeds": {"runs": len(sweep), "machines": 20, "units": 200, "steps": 20,
                      "resources": True, "wall_s": round(time.perf_counter() - sweep_t0, 2)},
            "runs": len(growth) + len(with_resources) + len(sweep),
            "violations": len(failed), "violated": [r["violation"] for r in failed],
            "largest": growth[-1] if growth else {}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="machines:units,... (no resources)")
    p.add_argument("--resource-sizes", default=DEFAULT_RESOURCE_SIZES,
                   help="machines:units,... with the issue 13 resources")
    p.add_argument("--steps", type=int, default=3, help="chaos/settle epochs per size")
    p.add_argument("--seeds", type=int, default=50, help="small seeds (20 machines, 200 units)")
    args = p.parse_args(argv)
    result = run(_sizes(args.sizes), _sizes(args.resource_sizes), args.steps, args.seeds)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
