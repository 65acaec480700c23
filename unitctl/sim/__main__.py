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


def _parser() -> argparse.ArgumentParser:
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
    p.add_argument("--max-globals", type=int, default=10,
                   help="at most this many global units (-1: 1 %% of the units)")
    p.add_argument("--no-resources", action="store_true",
                   help="units need no CPU, memory or ports; machines have no capacity")
    p.add_argument("--no-dynamic-ports", action="store_true", help="leave @PORT units out")
    p.add_argument("--json", action="store_true", help="print one JSON object per seed")
    return p


def _replay(args: argparse.Namespace, seed: int) -> str:
    """The command that replays seed ``seed`` of this run."""
    flags = "".join(flag for flag, on in (
        (" --no-fencing", args.no_fencing), (" --no-globals", args.no_globals),
        (" --no-resources", args.no_resources),
        (" --no-dynamic-ports", args.no_dynamic_ports)) if on)
    return (f"python -m unitctl.sim --machines {args.machines} --units {args.units} "
            f"--steps {args.steps} --ttl {args.ttl} --faults {args.faults}{flags} "
            f"--max-globals {args.max_globals} --seed {seed}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for seed in range(args.seed, args.seed + args.seeds):
        cfg = SimConfig(machines=args.machines, units=args.units, seed=seed, steps=args.steps,
                        ttl_ms=int(args.ttl * 1000), faults=args.faults,
                        fencing=not args.no_fencing, globals_=not args.no_globals,
                        max_globals=None if args.max_globals < 0 else args.max_globals,
                        resources=not args.no_resources,
                        dynamic_ports=not args.no_dynamic_ports)
        t0 = time.perf_counter()
        try:
            result = simulate(cfg)
        except InvariantViolation as exc:
            print(f"FAIL {exc}", file=sys.stderr)
            print(f"replay: {_replay(args, seed)}", file=sys.stderr)
            return 1
        summary = {**result.summary(), "wall_s": round(time.perf_counter() - t0, 2)}
        if args.json:
            print(json.dumps(summary))
        else:
            print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0

if __name__ == "__main__":
    sys.exit(main())
