"""One chaos soak, end to end: boot, load, faults, checks, report.

:func:`run_soak` boots a :class:`~unitctl_testing.cluster.Cluster` of ``machines``
machines with a 3-member etcd (its own tag, bridge and subnet), starts the pool,
then for ``duration`` seconds runs the load while injecting one fault at a time
(kinds in random order, every kind once per cycle, from a seeded RNG), each
followed by a recovery window of TTL + 3 s and its repair. The systemd monitor
polls all the while. At the end the invariants are evaluated on the records
and the report (a JSON-ready dict) is returned and written to ``report_path``.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from unitctl_testing.chaos import invariants as inv
from unitctl_testing.chaos.injector import KINDS, Fault, FaultInjector
from unitctl_testing.chaos.load import REPO, Command, LoadGenerator, unitctl
from unitctl_testing.chaos.monitor import SystemdMonitor
from unitctl_testing.chaos.pool import CONFLICT_PAIR, PoolUnit, pool, write_pool
from unitctl_testing.chaos.timeline import Interval
from unitctl_testing.cluster import Cluster
from unitctl_testing.host import log


@dataclass(frozen=True)
class SoakConfig:
    duration: float = 180.0
    seed: int = 0
    machines: int = 5
    ttl: float = 5.0
    poll_period: float = 0.2
    logs_dir: str = "/tmp/unitctl-chaos-logs"


def _facts() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       "")
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return {"host": platform.node(), "kernel": platform.release(), "cpu": cpu,
            "cpus": os.cpu_count(), "commit": commit, "python": platform.python_version()}


def _launch_pool(c: Cluster, load: LoadGenerator, units: list[PoolUnit],
                 monitor: SystemdMonitor, timeout: float = 60) -> None:
    names = [u.name for u in units if u.placeable]
    begin = time.monotonic()
    r = unitctl(c.endpoint, "start", "--no-block", *(load.paths[n] for n in names))
    end = time.monotonic()
    if r.returncode != 0:
        raise RuntimeError(f"starting the pool failed: {r.stdout}{r.stderr}")
    load.commands.extend(Command(n, "start", begin, end, 0, "setup") for n in names)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(monitor.where(n) for n in names):
            return
        time.sleep(0.2)
    missing = [n for n in names if not monitor.where(n)]
    raise RuntimeError(f"pool not running after {timeout}s: {missing}")


def _fault_cycle(cfg: SoakConfig, inj: FaultInjector, rng: random.Random,
                 deadline: float) -> list[Fault]:
    faults: list[Fault] = []
    order: list[str] = []
    while time.monotonic() + 2 * cfg.ttl + 4 < deadline:
        if not order:
            order = rng.sample(KINDS, len(KINDS))
        kind = order.pop()
        log(f"chaos: injecting {kind}")
        f = inj.inject(kind)
        faults.append(f)
        time.sleep(max(0.0, f.end + cfg.ttl + inv.MARGIN + 1 - time.monotonic()))
        if f.repair is not None:
            f.repair()
        time.sleep(1.0)
    return faults


def _analyse(cfg: SoakConfig, units: list[PoolUnit], runs: list[Interval], faults: list[Fault],
             load: LoadGenerator, t0: float, t_end: float) -> dict[str, Any]:
    ttl = cfg.ttl
    launched = {u.name: load.launched_periods(u.name, t_end) for u in units if u.placeable}
    all_gaps = [g for u, periods in launched.items() for g in inv.gaps(u, runs, periods, t_end)]
    twice, unresolved = inv.never_twice(runs, faults, ttl, t0)
    violations = (twice + inv.conflicts(runs, CONFLICT_PAIR, faults, ttl, t0)
                  + inv.down_too_long(all_gaps, faults, ttl, t0)
                  + inv.stopped_by_outage(runs, faults, ttl, t0, launched))
    per_fault, worst = inv.recovery(faults, all_gaps, ttl, t0)
    return {"violations": violations, "unresolved_overlaps": unresolved,
            "faults_by_kind": dict(Counter(f.kind for f in faults)),
            "worst_by_kind": worst, "faults": per_fault,
            "command_to_running_worst": inv.command_latency(all_gaps, faults, ttl),
            "violations_by_invariant": dict(Counter(v["invariant"] for v in violations))}


def _load_stats(load: LoadGenerator, t0: float) -> dict[str, Any]:
    return {"commands": dict(Counter(c.verb for c in load.commands)),
            "failed": dict(Counter(c.verb for c in load.commands if c.rc != 0)),
            "failed_examples": [
                {"unit": c.unit, "verb": c.verb, "rc": c.rc, "output": c.output}
                for c in load.commands if c.rc != 0][:10],
            "timeline": [[c.unit, c.verb, round(c.begin - t0, 3), round(c.end - t0, 3), c.rc]
                         for c in sorted(load.commands, key=lambda c: c.begin)]}


def _report(cfg: SoakConfig, units: list[PoolUnit], faults: list[Fault], load: LoadGenerator,
            monitor: SystemdMonitor, span: tuple[float, float], started: str) -> dict[str, Any]:
    t0, t_end = span
    runs = monitor.intervals()
    return {"soak": {**asdict(cfg), "started": started, "ran_for": round(t_end - t0, 1),
                     "etcd_members": 3, "units": [u.name for u in units],
                     "note": "times are seconds from the start of the load"},
            "machine": _facts(),
            **_analyse(cfg, units, runs, faults, load, t0, t_end),
            "load": _load_stats(load, t0),
            "monitor": {n: {"polls": s.polls, "failures": s.failures, "boots": s.boots,
                            "max_gap_between_polls": round(s.max_gap, 3)}
                        for n, s in monitor.stats.items()},
            "runs_seen": len(runs)}


def run_soak(cfg: SoakConfig, report_path: str | None = None) -> dict[str, Any]:
    units = pool(cfg.ttl)
    rng = random.Random(cfg.seed)
    workdir = Path(tempfile.mkdtemp(prefix="unitctl-chaos-"))
    c = Cluster(cfg.machines, etcd_size=3, agent_ttl=f"{cfg.ttl:g}s", tag="c",
                bridge="br-unitctl-c", subnet="10.231.90")
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    monitor = SystemdMonitor(c, [u.name for u in units], period=cfg.poll_period)
    load = LoadGenerator("", write_pool(units, workdir / "units"),
                         [u.name for u in units if u.by_load], random.Random(cfg.seed + 1))
    try:
        c.up()
        load.endpoint = c.endpoint
        monitor.start()
        _launch_pool(c, load, units, monitor)
        t0 = time.monotonic()
        load.start()
        inj = FaultInjector(c, monitor, load, rng, cfg.ttl)
        faults = _fault_cycle(cfg, inj, rng, t0 + cfg.duration)
        time.sleep(cfg.ttl + inv.MARGIN + 1)
        load.stop()
        t_end = time.monotonic()
        time.sleep(2 * cfg.poll_period)
        monitor.stop()
        report = _report(cfg, units, faults, load, monitor, (t0, t_end), started)
        if report["violations"]:
            report["logs"] = c.collect_logs(os.path.join(cfg.logs_dir,
                                                         time.strftime("%Y%m%d-%H%M%S")))
    finally:
        load.stop()
        monitor.stop()
        c.down()
        shutil.rmtree(workdir, ignore_errors=True)  # unit files only, no mounts
    if report_path:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=2) + "\n")
    return report
