"""The chaos soak as a benchmark: ``python -m bench.chaos --duration 3600 [--seed N]``.

Runs :func:`unitctl_testing.chaos.soak.run_soak` (root and systemd-nspawn only)
and writes ``bench/results/chaos-<date>.json`` (or ``--out``): faults by kind,
violations, worst recovery per fault kind, the seed and the machine. Exit code
1 when any promise was violated. Run it under the cluster lock.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from unitctl_testing.chaos.soak import SoakConfig, run_soak

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    p.add_argument("--duration", type=float, default=3600.0, help="seconds of load and faults")
    p.add_argument("--seed", type=int, default=None, help="RNG seed (default: the clock)")
    p.add_argument("--machines", type=int, default=5)
    p.add_argument("--ttl", type=float, default=5.0, help="agent lease TTL, seconds")
    p.add_argument("--out", default=None, help="report path")
    a = p.parse_args(argv)
    seed = int(time.time()) if a.seed is None else a.seed
    out = a.out or str(RESULTS / f"chaos-{time.strftime('%Y%m%d')}.json")
    report = run_soak(SoakConfig(duration=a.duration, seed=seed, machines=a.machines,
                                 ttl=a.ttl), out)
    print(json.dumps({k: report[k] for k in ("faults_by_kind", "worst_by_kind",
                                             "violations_by_invariant")}, indent=1))
    print(f"report: {out} (seed {seed})")
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
