"""Real systemd: start latency and failover on the nspawn cluster (root only).

Boots ``unitctl_testing.cluster`` ``Cluster(3, agent_ttl=...)`` (real systemd
in systemd-nspawn machines, the real agent unit, etcd on the host) and drives
it with the real CLI (``python -m unitctl --endpoint ... start``, the package
copied and byte-compiled as an installed one is).

* ``footprint_idle``: VmRSS (``/proc/<pid>/status``) and CPU (utime + stime over
  a window) of ``unitctl-agent`` inside each machine, D-Bus connected, idle;
  one of the three leads the engine, the others stand by;
* ``start``: wall time of ``unitctl start`` of a new unit (which blocks until
  the unit is active on its machine), CLI start-up included, over N starts,
  p50/p99/max, in turn with its floors measured in the same run:
  ``python -c pass``, ``etcdctl put`` and, inside a machine, a plain
  ``systemctl start`` of a new local unit (D-Bus to PID 1);
* ``hard kill``: the machine running a unit is killed (cgroup.kill); seconds
  from the kill until the unit is reported active on another machine, per TTL;
* ``graceful stop``: the agent of the unit's machine is stopped (SIGTERM:
  units stopped, lease revoked); seconds from the start of ``systemctl stop``
  (not its return) until active elsewhere.

Usage: ``sudo python -m bench.nspawn [--starts 50] [--ttls 10,30] [--failovers 3]
[--window 10] [--footprint-only] [--only-start] [--trace N]`` (``--footprint-only``:
the agents' idle footprint alone; ``--only-start``: the start latency alone, one
cluster; ``--trace N``: N starts traced end to end first, :mod:`bench.start_trace`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

AGENT = "unitctl-agent.service"
SERVICE = "[Service]\nExecStart=/bin/sleep infinity\n"


def _cli(endpoint: str, *args: str, env: dict[str, str] | None = None,
         python: str = sys.executable) -> float:
    """Seconds of one ``python -m unitctl ARGS``; with an ``env`` of
    :func:`_compiled_copy`, run from the copy (the current directory comes first on
    ``sys.path``: run from the repository, the uncompiled sources would be imported)
    by ``python`` (:func:`bench.installed.installed_python`)."""
    t0 = time.perf_counter()
    cwd = env["PYTHONPATH"] if env is not None and "PYTHONPATH" in env else str(REPO)
    subprocess.run([python, "-m", "unitctl", "--endpoint", endpoint, *args],
                   check=True, capture_output=True, timeout=120, cwd=cwd, env=env)
    return time.perf_counter() - t0


def _timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return time.perf_counter() - t0


def _stats(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {"p50_ms": round(1000 * statistics.median(s), 1),
            "p99_ms": round(1000 * s[min(len(s) - 1, round(0.99 * (len(s) - 1)))], 1),
            "max_ms": round(1000 * s[-1], 1), "runs": len(s)}


# Run inside a machine: time N ``systemctl start`` of local units (D-Bus to PID 1,
# the unit file new to systemd, as the agent's are), after one warm-up.
_LOCAL_STARTS = """
import json, subprocess, sys, time
n = int(sys.argv[1]); out = []
for i in range(n + 1):
    name = f"floor-{i}.service"
    with open(f"/run/systemd/system/{name}", "w") as f:
        f.write("[Service]\\nExecStart=/bin/sleep infinity\\n")
    t0 = time.perf_counter()
    subprocess.run(["systemctl", "start", name], check=True)
    out.append(time.perf_counter() - t0)
    subprocess.run(["systemctl", "stop", name], check=True)
print(json.dumps(out[1:]))
"""


def _compiled_copy(tmp: str) -> tuple[str, dict[str, str]]:
    """The package copied with its bytecode compiled (as installed): the interpreter
    (:func:`bench.installed.installed_python`, no editable finder) and env to run it."""
    from bench.installed import installed_python

    site = os.path.join(tmp, "site")
    shutil.copytree(REPO / "unitctl", os.path.join(site, "unitctl"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", site], check=True,
                   stdout=subprocess.DEVNULL)
    return installed_python(tmp), {**os.environ, "PYTHONPATH": site}


def _start_latency(c: Any, tmp: str, starts: int) -> dict[str, Any]:
    """``unitctl start`` of a new unit until active, in turn with its floors."""
    ep = c.endpoint
    python, env = _compiled_copy(tmp)
    lat, lat_dev, py, dev, put = [], [], [], [], []
    etcdctl = ["etcdctl", "--endpoints", ep, "put", "/bench/floor", "x"]
    _cli(ep, "start", _unit_file(tmp, "bench-warm.service"), env=env, python=python)
    for i in range(starts):
        lat.append(_cli(ep, "start", _unit_file(tmp, f"bench-{i}.service"), env=env,
                        python=python))
        lat_dev.append(_cli(ep, "start", _unit_file(tmp, f"bench-dev-{i}.service"), env=env))
        py.append(_timed([python, "-c", "pass"]))
        dev.append(_timed([sys.executable, "-c", "pass"]))
        put.append(_timed(etcdctl))
    name = c.names[0]
    local = json.loads(c.exec(name, "python3", "-", str(starts), input=_LOCAL_STARTS).stdout)
    u, floors = _stats(lat), {"python_c_pass": _stats(py), "etcdctl_put": _stats(put),
                              "systemctl_start_in_machine": _stats(local)}
    return {"unitctl_start": u, "floors": floors, "starts": starts,
            "interpreter": "a venv as `pip install .` leaves it (bench/installed.py)",
            "dev_venv": {"unitctl_start": _stats(lat_dev), "python_c_pass": _stats(dev),
                         "interpreter": "the development venv (editable install's finder)"},
            "ratio_p50_to_systemctl": round(u["p50_ms"] / floors[
                "systemctl_start_in_machine"]["p50_ms"], 2),
            "sum_of_floors_p50_ms": round(sum(f["p50_ms"] for f in floors.values()), 1),
            "goal": {"p50_ms": 100, "p99_ms": 250},
            "met": u["p50_ms"] <= 100 and u["p99_ms"] <= 250}


def _agent_footprint(c: Any, window: float) -> dict[str, Any]:
    """VmRSS (sampled every 0.5 s: p50/p99/max), CPU and etcd connections of each
    machine's unitctl-agent, idle (one leads the engine, the others stand by), and
    the RSS floors measured inside a machine in the same run."""
    from bench.footprint import CONNECTIONS_OF, RSS_OF, stats
    from unitctl_testing.rootfs import VENV

    tick = os.sysconf("SC_CLK_TCK")
    pids = {n: c.exec(n, "systemctl", "show", "-p", "MainPID", "--value", AGENT).stdout.strip()
            for n in c.names}

    def proc(n: str) -> tuple[float, int]:
        status = c.exec(n, "cat", f"/proc/{pids[n]}/status", f"/proc/{pids[n]}/stat").stdout
        rss = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS"))
        fields = status.rsplit(")", 1)[1].split()
        return rss / 1024, int(fields[11]) + int(fields[12])
    before = {n: proc(n)[1] for n in c.names}
    samples: dict[str, list[float]] = {n: [] for n in c.names}
    t0 = time.monotonic()
    while time.monotonic() - t0 < window:
        for n in c.names:
            samples[n].append(proc(n)[0])
        time.sleep(0.5)
    span = time.monotonic() - t0
    leader = asyncio.run(_leader(c.endpoint))
    port = str(int(c.endpoint.rsplit(":", 1)[1]))
    out = {n: {"vmrss_mib": stats(samples[n]), "leads_engine": c.machine_id(n) == leader,
               "cpu_percent": round(100 * (proc(n)[1] - before[n]) / tick / span, 2),
               "etcd_connections": int(c.exec(n, f"{VENV}/bin/python", "-c", CONNECTIONS_OF,
                                              pids[n], port).stdout)} for n in c.names}
    floors = {name: stats([int(c.exec(c.names[0], f"{VENV}/bin/python", "-c", RSS_OF,
                                      code).stdout) / 1024 for _ in range(5)])
              for name, code in (("python_c_pass", "pass"),
                                 ("import_dbus_fast_asyncio", "import dbus_fast, asyncio"))}
    worst = max(v["vmrss_mib"]["max"] for v in out.values())
    return {"machines": out, "window_s": window, "goal_mib": 30, "max_vmrss_mib": worst,
            "floors": floors, "ratio_max_to_dbus_asyncio_floor": round(
                worst / floors["import_dbus_fast_asyncio"]["p50"], 2)}


async def _leader(endpoint: str) -> str | None:
    from unitctl.registry.connection import EtcdConfig
    from unitctl.registry.gateway import GatewayKV
    from unitctl.registry.registry import Registry

    reg = Registry(await GatewayKV.connect(EtcdConfig(endpoints=tuple(endpoint.split(",")))))
    try:
        return await reg.leader()
    finally:
        await reg.close()


async def _active_on(endpoint: str, unit: str, not_on: str, timeout: float) -> str:
    """Wait until ``unit`` is reported active on a machine other than ``not_on``."""
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry

    kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(endpoint.split(","))))
    reg = Registry(kv)
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < timeout:
            for s in await reg.list_states():
                if s.name == unit and s.machine_id != not_on and s.active == "active":
                    return s.machine_id
            await asyncio.sleep(0.02)
    finally:
        await kv.close()
    raise TimeoutError(f"{unit} not active elsewhere after {timeout}s")


async def _placement(endpoint: str, unit: str) -> str:
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry

    kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(endpoint.split(","))))
    try:
        return (await Registry(kv).list_placements())[unit]
    finally:
        await kv.close()


def _unit_file(tmp: str, name: str) -> str:
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(SERVICE)
    return path


def _failover(c: Any, tmp: str, ttl: int, kind: str, i: int) -> float:
    """Seconds from the kill (or the start of the graceful stop) to active elsewhere."""
    ep = c.endpoint
    by_id = {c.machine_id(name): name for name in c.names}
    name = f"fo-{ttl}-{kind}-{i}.service"
    _cli(ep, "start", _unit_file(tmp, name))
    old = asyncio.run(_placement(ep, name))
    host = by_id[old]
    t0 = time.perf_counter()  # before the verb: a graceful stop is timed from its start
    if kind == "kill":
        c.kill(host)
    else:
        c.stop_agent(host)
    asyncio.run(_active_on(ep, name, old, 4 * ttl + 30))
    took = time.perf_counter() - t0
    if kind == "kill":
        c.boot(host)
    else:
        c.start_agent_unit(host)
    time.sleep(2)
    return took


def footprint_only(window: float, settle: float = 5.0) -> dict[str, Any]:
    """Only the idle footprint part: 3 machines, TTL 10 s."""
    from unitctl_testing.cluster import Cluster

    with Cluster(3, agent_ttl="10s") as c:
        time.sleep(settle)  # the agents register, elect and settle
        return {"footprint_idle": _agent_footprint(c, window)}


def _traces(c: Any, tmp: str, count: int) -> list[dict[str, Any]]:
    """``count`` traced starts (:mod:`bench.start_trace`), after one warm-up start."""
    from bench.start_trace import EtcdEvents, traced_start

    python, env = _compiled_copy(os.path.join(tmp, "traced"))
    _cli(c.endpoint, "start", _unit_file(tmp, "trace-warm.service"), env=env, python=python)
    events = EtcdEvents(c.endpoint)
    try:
        time.sleep(0.5)
        return [traced_start(c, env, _unit_file(tmp, f"trace-{i}.service"),
                             f"trace-{i}.service", events, tmp, python)
                for i in range(count)]
    finally:
        events.close()


def run(starts: int, ttls: list[int], failovers: int, window: float,
        only_start: bool = False, trace: int = 0) -> dict[str, Any]:
    from unitctl_testing.cluster import Cluster

    out: dict[str, Any] = {}
    tmp = tempfile.mkdtemp(prefix="unitctl-bench-")
    for n, ttl in enumerate(ttls):
        with Cluster(3, agent_ttl=f"{ttl}s") as c:
            if n == 0:
                time.sleep(2)  # the agents settle
                if not only_start:
                    out["footprint_idle"] = _agent_footprint(c, window)
                if trace:
                    out["trace"] = _traces(c, tmp, trace)
                out["start"] = _start_latency(c, tmp, starts)
            if only_start:
                break
            for kind in ("kill", "stop"):
                took = [_failover(c, tmp, ttl, kind, i) for i in range(failovers)]
                label = "hard_kill" if kind == "kill" else "graceful_stop"
                out[f"{label}_ttl{ttl}_s"] = {
                    "median": round(statistics.median(took), 2), "max": round(max(took), 2),
                    "min": round(min(took), 2), "runs": len(took)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--starts", type=int, default=50)
    p.add_argument("--ttls", default="10,30")
    p.add_argument("--failovers", type=int, default=3)
    p.add_argument("--window", type=float, default=10.0, help="idle footprint window (s)")
    p.add_argument("--footprint-only", action="store_true",
                   help="only the idle footprint of the agents (no starts, no failovers)")
    p.add_argument("--only-start", action="store_true",
                   help="only the start latency (no footprint, no failover)")
    p.add_argument("--trace", type=int, default=0, metavar="N",
                   help="also trace N starts end to end (bench/start_trace.py)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench.nspawn needs root (systemd-nspawn)")
    if args.footprint_only:
        only = footprint_only(args.window)
        print(json.dumps(only))
        return only
    result = run(args.starts, [int(t) for t in args.ttls.split(",")], args.failovers,
                 args.window, args.only_start, args.trace)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
