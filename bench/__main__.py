"""The one benchmark runner: ``python -m bench [--quick] [--only NAME[,NAME]] [--report]``.

Runs each benchmark, writes ``bench/results/<name>.json`` (with the machine
facts and the command) and prints every figure next to its goal and fleet's.
Benchmarks: cli, scheduler, engine_round, sim, e2e, etcd_scale, footprint, nspawn,
nspawn_footprint (root and
systemd-nspawn only; skipped otherwise). ``--quick`` is a smoke run (< 1 min).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def machine_facts() -> dict[str, str]:
    def first(path: str, key: str) -> str:
        try:
            with open(path) as f:
                return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith(key)), "")
        except OSError:
            return ""

    etcd = ""
    if shutil.which(os.environ.get("UNITCTL_ETCD_BIN", "etcd")):
        out = subprocess.run([os.environ.get("UNITCTL_ETCD_BIN", "etcd"), "--version"],
                             capture_output=True, text=True, check=False).stdout
        etcd = out.splitlines()[0] if out else ""
    return {"nproc": str(os.cpu_count()), "cpu": first("/proc/cpuinfo", "model name"),
            "memory": first("/proc/meminfo", "MemTotal"), "kernel": platform.release(),
            "python": platform.python_version(), "etcd": etcd}


def _scheduler(quick: bool) -> dict[str, Any]:
    from bench.bench_scheduler import snapshot, timed

    out: dict[str, Any] = {}
    for count in (1000, 10000) if quick else (1000, 10000, 50000):
        runs = 1 if quick else (5 if count <= 10000 else 2)
        seconds, placed, after = timed(snapshot(count, 1000), runs)
        steady, _, _ = timed(after, runs)
        out[f"units_{count}"] = {"placements": placed, "seconds": round(seconds, 4),
                                 "placements_per_s": round(placed / seconds),
                                 "steady_recheck_s": round(steady, 4)}
    return out


def _engine_round(quick: bool) -> dict[str, Any]:
    from bench import engine_round

    args = ["--units", "2000", "--machines", "200"] if quick else []
    r = engine_round.main(args)
    r.pop("profile", None)
    return r


def _sim(quick: bool) -> dict[str, Any]:
    from bench import sim_scale

    return sim_scale.main(["--sizes", "20:200,100:1000", "--steps", "2", "--seeds", "3"]
                          if quick else [])


def _e2e(quick: bool) -> dict[str, Any]:
    from bench import e2e_etcd

    args = (["--agents", "50", "--units", "500", "--workers", "2", "--window", "3",
             "--probes", "5"] if quick else [])
    return e2e_etcd.main(args)


def _etcd_scale(quick: bool) -> dict[str, Any]:
    from bench import etcd_scale

    return etcd_scale.main(["--sizes", "100,500", "--workers", "2", "--window", "3",
                            "--settle", "2"] if quick else [])


def _footprint(quick: bool) -> dict[str, Any]:
    from bench import footprint

    return footprint.main(["--units", "100", "--window", "3"] if quick else [])


def _nspawn(quick: bool) -> dict[str, Any]:
    from bench import nspawn

    if os.geteuid() != 0 or not shutil.which("systemd-nspawn"):
        return {"skipped": "needs root and systemd-nspawn"}
    return nspawn.main(["--starts", "5", "--ttls", "10", "--failovers", "1", "--window", "3"]
                       if quick else [])


def _nspawn_footprint(quick: bool) -> dict[str, Any]:
    from bench import nspawn

    if os.geteuid() != 0 or not shutil.which("systemd-nspawn"):
        return {"skipped": "needs root and systemd-nspawn"}
    return nspawn.main(["--footprint-only", "--window", "3" if quick else "20"])


def _cli(quick: bool) -> dict[str, Any]:
    from bench import cli

    return cli.main(["--runs", "5", "--bulk", "1000", "--bulk-rounds", "1"] if quick else [])


BENCHES: dict[str, Callable[[bool], dict[str, Any]]] = {
    "cli": _cli,
    "scheduler": _scheduler, "engine_round": _engine_round, "sim": _sim, "e2e": _e2e,
    "etcd_scale": _etcd_scale, "footprint": _footprint, "nspawn": _nspawn,
    "nspawn_footprint": _nspawn_footprint,
}

#: (bench, dotted path into its result, goal, fleet's figure)
TABLE = [
    ("cli", "help.unitctl.p50_ms", "--help <= 60 ms", "-"),
    ("cli", "list_units.ratio_p50", "<= 4x etcdctl", "-"),
    ("cli", "list_unit_files.ratio_p50", "<= 4x etcdctl", "-"),
    ("cli", "bulk.together.p50_ms", "<= 10,000 ms", "-"),
    ("cli", "bulk.destroy_no_block.p50_ms", "(report: destroy of the same)", "-"),
    ("scheduler", "units_10000.placements_per_s", ">= 20,000 placements/s", "-"),
    ("scheduler", "units_50000.placements_per_s", "(growth)", "-"),
    ("engine_round", "first_round_s", "(one round, 10k units)", "-"),
    ("engine_round", "steady_round_s", "(one idle round)", "-"),
    ("e2e", "rollout.placements_per_s", ">= 2,000 placements/s", "capped at 1,000 units"),
    ("e2e", "rollout.start_to_all_active_s", "<= 15 s (10k units, 1k agents)", "-"),
    ("e2e", "rollout.unit_to_active.p99_ms", "(report)", "-"),
    ("e2e", "wakes_per_change_median", "exactly 1", "every agent"),
    ("e2e", "etcd_requests_per_s_steady", "(report)", "-"),
    ("e2e", "single_start.p50_ms", "(fake systemd, CLI included)", "-"),
    ("etcd_scale", "largest.registration_s.max", "(5,000 agents)", "-"),
    ("etcd_scale", "largest.etcd_cpu_percent", "(report)", "-"),
    ("etcd_scale", "largest.etcd_rss_mib", "(report)", "-"),
    ("etcd_scale", "largest.etcd_requests_per_s", "(report)", "-"),
    ("footprint", "idle_rss_mib", "<= 30 MB", "-"),
    ("footprint", "busy_rss_mib", "(500 units)", "-"),
    ("footprint", "idle_cpu_percent", "(report)", "-"),
    ("footprint", "busy_cpu_percent", "(report)", "-"),
    ("nspawn", "start.unitctl_start.p50_ms", "<= 100 ms", "-"),
    ("nspawn", "start.unitctl_start.p99_ms", "<= 250 ms", "-"),
    ("nspawn", "start.floors.systemctl_start_in_machine.p50_ms", "(floor)", "-"),
    ("nspawn", "start.ratio_p50_to_systemctl", "(ratio)", "-"),
    ("nspawn", "footprint_idle.max_vmrss_mib", "<= 30 MB", "-"),
    ("nspawn_footprint", "footprint_idle.max_vmrss_mib", "<= 30 MB", "-"),
    ("nspawn_footprint", "footprint_idle.ratio_max_to_dbus_asyncio_floor", "(ratio)", "-"),
    ("nspawn", "hard_kill_ttl10_s.median", "<= 10.5 s", "-"),
    ("nspawn", "hard_kill_ttl30_s.median", "<= 30.5 s", "-"),
    ("nspawn", "graceful_stop_ttl10_s.median", "(report)", "-"),
    ("sim", "largest.wall_s", "(10k machines, 100k units)", "-"),
    ("sim", "largest.max_wakes_single_unit_round", "1 (2 for a move)", "every agent"),
    ("sim", "violations", "0", "-"),
]


def _commit() -> str:
    """The commit the run measured (``+dirty`` when the tree had changes)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              check=False).stdout.strip()
    return git("rev-parse", "HEAD") + ("+dirty" if git("status", "--porcelain") else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(BENCHES)}")
    p.add_argument("--report", action="store_true",
                   help="run nothing: print issue 12's goals table from the results files")
    p.add_argument("--write", action="store_true",
                   help="with --report: also rewrite its block in docs/benchmarks.md")
    args = p.parse_args(argv)
    if args.report:
        from bench import report

        print(report.render(report.load()), end="")
        if args.write:
            print("docs/benchmarks.md " + ("updated" if report.write(report.load())
                                          else "already up to date"))
        return 0
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    RESULTS.mkdir(exist_ok=True)
    facts = machine_facts()
    results: dict[str, Any] = {}
    failed = False
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            res = BENCHES[name](args.quick)
        except Exception as exc:  # report and go on with the next benchmark
            res = {"error": f"{type(exc).__name__}: {exc}"}
            failed = True
        results[name] = res
        doc = {"name": name, "quick": args.quick, "wall_s": round(time.perf_counter() - t0, 1),
               "command": f"python -m bench --only {name}" + (" --quick" if args.quick else ""),
               "commit": _commit(), "machine": facts, "result": res}
        suffix = "-quick" if args.quick else ""
        (RESULTS / f"{name}{suffix}.json").write_text(json.dumps(doc, indent=2) + "\n")
        print(json.dumps(res)[:400], flush=True)
    from bench import report

    print(f"\n{'benchmark':<48} {'value':>12}  {'goal':<24} fleet")
    for bench, path, goal, fleet in TABLE:
        if bench in results:
            value = report.get(results[bench], path)
            shown = "-" if value is None else (f"{value:,}" if isinstance(value, int | float)
                                               else str(value))
            print(f"{bench + '.' + path:<48} {shown:>12}  {goal:<24} {fleet}")
    if not args.quick:  # the docs' goals table follows the results files
        report.write(report.load())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
