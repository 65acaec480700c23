"""Benchmark the pure scheduler: placements per second on a synthetic cluster.

Builds 1,000 machines and 1k / 10k / 50k units with a rule mix (10% metadata,
5% Conflicts globs, 5% MachineOf, 1% Global), times ``schedule()`` from an
empty schedule (median of several runs, ``time.perf_counter``) and prints
placements/s. A second timing ("steady") re-schedules the resulting plan,
which must produce no decisions.

Usage: ``python -m bench.bench_scheduler [--json] [--runs N] [--units 1000,10000]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from unitctl.model import DesiredState, Machine, Requirements
from unitctl.scheduler import ClusterSnapshot, UnitInfo, schedule

REGIONS = ("us", "eu", "ap")
DISKS = ("ssd", "hdd")


def machines(count: int) -> dict[str, Machine]:
    """Return ``count`` machines with region/disk metadata."""
    out = {}
    for i in range(count):
        mid = f"{i:08x}" + "0" * 24
        meta = {"region": REGIONS[i % 3], "disk": DISKS[(i // 3) % 2]}
        out[mid] = Machine(id=mid, metadata=meta)
    return out


def requirements(i: int) -> tuple[str, Requirements]:
    """Return the name and rules of unit ``i`` according to the rule mix."""
    bucket = i % 100
    if bucket < 10:  # 10% metadata
        meta = {"region": frozenset({REGIONS[i % 3]})}
        if bucket < 3:
            meta["disk"] = frozenset({"ssd"})
        return f"meta-{i}.service", Requirements(metadata=meta)
    if bucket < 15:  # 5% conflicts: groups of 8 instances that must spread
        group = i // 800
        return f"db{group}@{i}.service", Requirements(conflicts=(f"db{group}@*.service",))
    if bucket < 20:  # 5% followers of a plain unit
        return f"side-{i}.service", Requirements(machine_of=(f"app-{i + 10}.service",))
    if bucket == 20:  # 1% global
        meta = {"disk": frozenset({"ssd"})} if i % 2 else {}
        return f"global-{i}.service", Requirements(is_global=True, metadata=meta)
    return f"app-{i}.service", Requirements()


def snapshot(unit_count: int, machine_count: int = 1000) -> ClusterSnapshot:
    """Return a snapshot with nothing scheduled yet."""
    units = {}
    for i in range(unit_count):
        name, req = requirements(i)
        units[name] = UnitInfo(name, f"h{i}", DesiredState.LAUNCHED, req)
    return ClusterSnapshot(machines=machines(machine_count), units=units, placements={})


def timed(snap: ClusterSnapshot, runs: int) -> tuple[float, int, ClusterSnapshot]:
    """Return the median seconds of ``schedule(snap)``, the placements made, and
    the snapshot after applying the plan."""
    times = []
    plan = schedule(snap)
    for _ in range(runs):
        start = time.perf_counter()
        plan = schedule(snap)
        times.append(time.perf_counter() - start)
    placed = sum(1 for d in plan.decisions if d.action.value == "schedule")
    after = ClusterSnapshot(snap.machines, snap.units, plan.placements)
    return statistics.median(times), placed, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line per size")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--units", default="1000,10000,50000")
    parser.add_argument("--machines", type=int, default=1000)
    args = parser.parse_args()
    for count in (int(n) for n in args.units.split(",")):
        snap = snapshot(count, args.machines)
        runs = args.runs if count <= 10000 else max(1, args.runs // 2)
        seconds, placed, after = timed(snap, runs)
        steady, _, _ = timed(after, runs)
        rate = placed / seconds if seconds else float("inf")
        result = {
            "units": count, "machines": args.machines, "placements": placed,
            "seconds": round(seconds, 4), "placements_per_s": round(rate),
            "steady_seconds": round(steady, 4), "runs": runs,
        }
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{count:>6} units / {args.machines} machines: {placed} placements in "
                  f"{seconds * 1000:.0f} ms = {rate:,.0f} placements/s; "
                  f"steady re-check {steady * 1000:.0f} ms")


if __name__ == "__main__":
    main()
