"""Real systemd: start latency and failover on the nspawn cluster (root only).

Boots ``unitctl_testing.cluster`` ``Cluster(3, agent_ttl=...)`` (real systemd
in systemd-nspawn machines, the real agent unit, etcd on the host) and drives
it with the real CLI (``python -m unitctl.cli.main --endpoint ... start``).

* ``start``: wall time of ``unitctl start unit`` (which blocks until the unit
  is active on its machine) over N starts, p50/p99, including the CLI's
  interpreter start-up; and that start-up alone (``unitctl --help``);
* ``hard kill``: the machine running a unit is killed (cgroup.kill); time until
  the unit is reported active on another machine, per TTL;
* ``graceful stop``: the agent of the unit's machine is stopped (SIGTERM:
  units unloaded, lease revoked); time until active elsewhere.

Usage: ``sudo python -m bench.nspawn [--starts 50] [--ttls 10,30] [--failovers 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

SERVICE = "[Service]\nExecStart=/bin/sleep infinity\n"


def _cli(endpoint: str, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "unitctl.cli.main", "--endpoint", endpoint, *args],
                   check=True, capture_output=True, timeout=120, cwd=str(REPO))
    return time.perf_counter() - t0


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


async def _active_on(endpoint: str, unit: str, not_on: str, timeout: float) -> tuple[float, str]:
    """Seconds until ``unit`` is reported active on a machine other than ``not_on``."""
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry

    kv = await EtcdKV.connect(EtcdConfig(endpoints=tuple(endpoint.split(","))))
    reg = Registry(kv)
    t0 = time.perf_counter()
    try:
        while time.perf_counter() - t0 < timeout:
            for s in await reg.list_states():
                if s.name == unit and s.machine_id != not_on and s.active == "active":
                    return time.perf_counter() - t0, s.machine_id
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


def run(starts: int, ttls: list[int], failovers: int) -> dict[str, Any]:
    from unitctl_testing.cluster import Cluster

    out: dict[str, Any] = {}
    tmp = tempfile.mkdtemp(prefix="unitctl-bench-")
    for n, ttl in enumerate(ttls):
        with Cluster(3, agent_ttl=f"{ttl}s") as c:
            ep = c.endpoint
            by_id = {c.machine_id(name): name for name in c.names}
            if n == 0:
                out["cli_startup_ms"] = round(1000 * statistics.median(
                    _cli(ep, "list-machines") for _ in range(5)), 1)
                lat = [_cli(ep, "start", _unit_file(tmp, f"bench-{i}.service"))
                       for i in range(starts)]
                out["start_ms_p50"] = round(1000 * statistics.median(lat), 1)
                out["start_ms_p99"] = round(1000 * _pct(lat, 0.99), 1)
                out["starts"] = starts
                back = []
                for _ in range(3):  # back to back: stop then start the same unit
                    unit = _unit_file(tmp, "bench-0.service")
                    _cli(ep, "stop", unit)
                    back.append(_cli(ep, "start", unit))
                out["restart_ms_median"] = round(1000 * statistics.median(back), 1)
            kills: list[float] = []
            stops: list[float] = []
            for i in range(failovers):
                for kind, sink in (("kill", kills), ("stop", stops)):
                    name = f"fo-{ttl}-{kind}-{i}.service"
                    _cli(ep, "start", _unit_file(tmp, name))
                    old = asyncio.run(_placement(ep, name))
                    host = by_id[old]
                    if kind == "kill":
                        c.kill(host)
                    else:
                        c.stop_agent(host)
                    took, _ = asyncio.run(_active_on(ep, name, old, 4 * ttl + 30))
                    sink.append(took)
                    if kind == "kill":
                        c.boot(host)
                    else:
                        c.start_agent_unit(host)
                    time.sleep(2)
            out[f"hard_kill_ttl{ttl}_s_median"] = round(statistics.median(kills), 2)
            out[f"hard_kill_ttl{ttl}_s_max"] = round(max(kills), 2)
            out[f"graceful_stop_ttl{ttl}_s_median"] = round(statistics.median(stops), 2)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--starts", type=int, default=50)
    p.add_argument("--ttls", default="10,30")
    p.add_argument("--failovers", type=int, default=3)
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench.nspawn needs root (systemd-nspawn)")
    result = run(args.starts, [int(t) for t in args.ttls.split(",")], args.failovers)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
