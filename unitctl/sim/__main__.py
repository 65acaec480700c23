"""``python -m unitctl.sim``: run the deterministic simulation and print a summary.

Exits 1 and prints the seed (and the command that replays it) when an
invariant breaks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from unitctl.sim.core import InvariantViolation, SimConfig, simulate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m unitctl.sim", description=__doc__.splitlines()[0])
    p.add_argument("--machines", type=int, default=1000)
    p.add_argument("--units", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=1, help="run seeds seed..seed+N-1")
    p.add_argument("--steps", type=int, default=10, help="chaos/settle epochs per seed")
    p.add_argument("--ttl", type=float, default=10.0, help="agent lease TTL in seconds")
    p.add_argument("--faults", type=float, default=3.0, help="mean faults per chaos window")
    p.add_argument("--no-fencing", action="store_true",
                   help="disable fencing (the checker must then report a violation)")
    p.add_argument("--no-globals", action="store_true", help="leave global units out")
    p.add_argument("--json", action="store_true", help="print one JSON object per seed")
    args = p.parse_args(argv)
    for seed in range(args.seed, args.seed + args.seeds):
        cfg = SimConfig(machines=args.machines, units=args.units, seed=seed, steps=args.steps,
                        ttl_ms=int(args.ttl * 1000), faults=args.faults,
                        fencing=not args.no_fencing, globals_=not args.no_globals)
        t0 = time.perf_counter()
        try:
            result = simulate(cfg)
        except InvariantViolation as exc:
            print(f"FAIL {exc}", file=sys.stderr)
            flags = (" --no-fencing" if args.no_fencing else "") + (
                " --no-globals" if args.no_globals else "")
            print(f"replay: python -m unitctl.sim --machines {args.machines} --units "
                  f"{args.units} --steps {args.steps} --ttl {args.ttl} --faults {args.faults}"
                  f"{flags} --seed {seed}", file=sys.stderr)
            return 1
        summary = {**result.summary(), "wall_s": round(time.perf_counter() - t0, 2)}
        if args.json:
            print(json.dumps(summary))
        else:
            print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
