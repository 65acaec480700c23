"""One engine round at scale, over the in-memory store (no network).

Registers M machines and N units (rule mix of :mod:`unitctl.sim.workload`, no
globals) in a :class:`~unitctl.registry.memory.MemoryKV` registry, then times
``Engine.reconcile``: the first round (parse every body, schedule everything,
commit every placement) and a steady round (nothing to change), with a
cProfile of the steady round's top functions.

Usage: ``python -m bench.engine_round [--machines 1000] [--units 10000]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import time
from typing import Any

from bench.e2e_etcd import unit_text
from unitctl.engine.engine import Engine
from unitctl.model import DesiredState, UnitRecord
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.sim.workload import make_machines, make_units
from unitctl.unitfile import UnitFile


async def _run(machines: int, units: int, profile: bool) -> dict[str, Any]:
    reg = Registry(MemoryKV(), "/round/")
    await reg.ensure_schema()
    lease = await reg.kv.grant_lease(3600)
    for m in make_machines(machines).values():
        await reg.register_machine(m, lease)
    for name, req in make_units(units, machines, globals_=False).items():
        uf = UnitFile.parse(unit_text(req))
        await reg.create_unit(UnitRecord(name, uf.hash(), DesiredState.LAUNCHED), uf.serialize())
    engine = Engine(reg, "bench")
    lead = await reg.campaign("bench", lease)
    assert lead is not None
    t0 = time.perf_counter()
    first = await engine.reconcile(lead)
    first_s = time.perf_counter() - t0
    steady = []
    for _ in range(3):
        t0 = time.perf_counter()
        await engine.reconcile(lead)
        steady.append(time.perf_counter() - t0)
    top = ""
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        await engine.reconcile(lead)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(18)
        top = buf.getvalue()
    assert first.plan is not None
    placed = len(first.plan.placements)
    return {"machines": machines, "units": units, "placed": placed,
            "first_round_s": round(first_s, 3), "first_round_txns": first.batches,
            "first_round_placements_per_s": round(placed / first_s),
            "steady_round_s": round(sorted(steady)[1], 3), "profile": top}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--machines", type=int, default=1000)
    p.add_argument("--units", type=int, default=10000)
    p.add_argument("--profile", action="store_true", help="print the steady round's profile")
    args = p.parse_args(argv)
    result = asyncio.run(_run(args.machines, args.units, args.profile))
    if args.profile:
        print(result["profile"])
    print(json.dumps({k: v for k, v in result.items() if k != "profile"}))
    return result


if __name__ == "__main__":
    main()
