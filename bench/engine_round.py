"""One engine round at scale, over the in-memory store (no network).

Registers M machines and N units (rule mix of :mod:`unitctl.sim.workload`, no
globals) in a :class:`~unitctl.registry.memory.MemoryKV` registry, then times
``Engine.reconcile``: the first round (parse every body, schedule everything,
commit every placement) and a steady round (nothing to change), with a
cProfile of the steady round's top functions; then, over the engine's live
:class:`~unitctl.engine.mirror.Mirror`, the round that follows ONE new
started unit (20 of them, one at a time: ``one_new_unit_round_ms``).

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
from unitctl.engine.mirror import Mirror
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
    one_new, one_profile = await _one_new_unit_rounds(reg, engine, lead, profile)
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
            "steady_round_s": round(sorted(steady)[1], 3),
            "one_new_unit_round_ms": _ms_stats(one_new), "profile": top,
            "one_new_unit_profile": one_profile}


def _ms_stats(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {"p50_ms": round(1000 * s[len(s) // 2], 2),
            "p99_ms": round(1000 * s[min(len(s) - 1, round(0.99 * (len(s) - 1)))], 2),
            "max_ms": round(1000 * s[-1], 2), "runs": len(s)}


async def _one_new_unit_rounds(reg: Registry, engine: Engine, lead: Any, profile: bool,
                               count: int = 20) -> tuple[list[float], str]:
    """Rounds over the engine's live mirror, each after ONE new unit was started
    (what ``unitctl start`` of one unit asks of the engine at this scale)."""
    mirror = Mirror(reg)
    await mirror.start()
    took: list[float] = []
    prof = cProfile.Profile() if profile else None
    try:
        await engine.reconcile(lead, mirror)  # the mirror's first round
        uf = UnitFile.parse("[Service]\nExecStart=/bin/sleep infinity\n")
        for i in range(count):
            mirror.trigger.clear()
            await reg.create_unit(UnitRecord(f"zz-new-{i}.service", uf.hash(),
                                             DesiredState.LAUNCHED), uf.serialize())
            await mirror.trigger.wait()
            if prof is not None and i == count - 1:
                prof.enable()
            t0 = time.perf_counter()
            result = await engine.reconcile(lead, mirror)
            took.append(time.perf_counter() - t0)
            assert result.plan is not None and f"zz-new-{i}.service" in result.plan.placements
    finally:
        if prof is not None:
            prof.disable()
        await mirror.close()
    if prof is None:
        return took, ""
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
    return took, buf.getvalue()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--machines", type=int, default=1000)
    p.add_argument("--units", type=int, default=10000)
    p.add_argument("--profile", action="store_true", help="print the steady round's profile")
    args = p.parse_args(argv)
    result = asyncio.run(_run(args.machines, args.units, args.profile))
    if args.profile:
        print(result["profile"])
        print(result["one_new_unit_profile"])
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("profile")}))
    return result


if __name__ == "__main__":
    main()
