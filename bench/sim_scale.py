"""The simulator at growing sizes, and many small seeds (issue 12, item 6).

Each size runs :func:`unitctl.sim.simulate` once (real ``schedule``, ``accept``,
``compute_tasks`` and fencing ``decide`` over a virtual clock, chaos epochs
included) and records its wall time, the peak RSS of this process after it,
and the simulator's own counters, so each cost can be read per unit and per
machine as the cluster grows. ``violations`` is counted from the runs: a run
that raises :class:`~unitctl.sim.core.InvariantViolation` adds one, with its
replay seed.

Usage: ``python -m bench.sim_scale [--sizes 100:1000,1000:10000,10000:100000]
[--steps 3] [--seeds 50]``
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

from unitctl.sim import SimConfig, simulate
from unitctl.sim.core import InvariantViolation

DEFAULT_SIZES = "100:1000,1000:10000,10000:100000"


def _one(cfg: SimConfig) -> dict[str, Any]:
    """One simulation: its summary, wall time and this process's peak RSS after it."""
    t0 = time.perf_counter()
    try:
        summary: dict[str, Any] = dict(simulate(cfg).summary())
    except InvariantViolation as exc:
        summary = {"seed": cfg.seed, "machines": cfg.machines, "units": cfg.units,
                   "violation": str(exc)}
    wall = time.perf_counter() - t0
    summary["wall_s"] = round(wall, 2)
    summary["wall_ms_per_unit_epoch"] = round(1000 * wall / max(1, cfg.units * cfg.steps), 4)
    summary["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return summary


def run(sizes: list[tuple[int, int]], steps: int, seeds: int) -> dict[str, Any]:
    """The growth runs (smallest first: the peak RSS only grows) and the seed sweep."""
    growth = [_one(SimConfig(machines=m, units=u, seed=1, steps=steps)) for m, u in sizes]
    sweep_t0 = time.perf_counter()
    sweep = [_one(SimConfig(machines=20, units=200, seed=s, steps=20)) for s in range(seeds)]
    failed = [r for r in growth + sweep if "violation" in r]
    return {"growth": growth, "steps": steps,
            "seeds": {"runs": len(sweep), "machines": 20, "units": 200, "steps": 20,
                      "wall_s": round(time.perf_counter() - sweep_t0, 2)},
            "runs": len(growth) + len(sweep), "violations": len(failed),
            "violated": [r["violation"] for r in failed],
            "largest": growth[-1] if growth else {}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="machines:units,...")
    p.add_argument("--steps", type=int, default=3, help="chaos/settle epochs per size")
    p.add_argument("--seeds", type=int, default=50, help="small seeds (20 machines, 200 units)")
    args = p.parse_args(argv)
    sizes = [(int(m), int(u)) for m, u in (s.split(":") for s in args.sizes.split(","))]
    result = run(sizes, args.steps, args.seeds)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
