"""Agent footprint: RSS, CPU and etcd connections of one agent process, idle and with units.

The child process is the real agent composition (:func:`unitctl.daemon.connect`,
``engine_factory``, the ``/metrics`` server and the DNS server on free loopback
ports, so the modules loaded are those of the default agent) over the adapter
the daemon uses (:class:`~unitctl.registry.gateway.GatewayKV`; ``gateway-lean``
is the same with ``metrics_address = off`` and ``dns_address = off``; ``etcd``
runs :class:`~unitctl.registry.etcd.EtcdKV` for comparison) against a
throw-away etcd, with :class:`~unitctl.agent.fake.FakeUnitManager` standing in
for systemd; it also imports the D-Bus adapter (``unitctl.systemd.manager``,
dbus-fast). The machine is alone, so it also leads the engine.

RSS is VmRSS from /proc sampled every 0.5 s over a window (p50/p99/max), CPU
is utime+stime over the window, connections are the child's TCP sockets to
etcd's port. Floors measured in the same run: the VmRSS of ``python -c pass``
and of ``python -c 'import dbus_fast, asyncio'`` (same interpreter).

Usage: ``python -m bench.footprint [--units 500] [--window 10] [--adapter gateway]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from unitctl_testing.etcd import etcd_cluster, free_port

PREFIX = "/footprint/"  # one sub-prefix per adapter run: a killed child's lease lives on
MID = "f00dfeed" + "0" * 24
REPO = Path(__file__).resolve().parents[1]

#: Prints the VmRSS (KiB) of a Python process once it has run ``sys.argv[1]``.
RSS_OF = ("import sys; exec(sys.argv[1]); "
          "print(next(ln.split()[1] for ln in open('/proc/self/status') "
          "if ln.startswith('VmRSS:')))")

#: Counts the TCP sockets of process ``argv[1]`` connected to port ``argv[2]``
#: (run inside the process's network namespace: the nspawn benchmark uses it too).
CONNECTIONS_OF = """
import os, sys
pid, port = sys.argv[1], int(sys.argv[2])
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        continue
    if link.startswith("socket:["):
        inodes.add(link[8:-1])
n = 0
for table in ("tcp", "tcp6"):
    with open(f"/proc/{pid}/net/{table}") as f:
        for line in list(f)[1:]:
            cols = line.split()
            if cols[9] in inodes and int(cols[2].rsplit(":", 1)[1], 16) == port \\
                    and cols[3] == "01":
                n += 1
print(n)
"""


def _child(endpoint: str, adapter: str) -> None:
    import logging

    import unitctl.systemd.manager  # noqa: F401  (the real agent's D-Bus adapter)
    from unitctl import daemon
    from unitctl.agent.agent import Agent, AgentOptions
    from unitctl.agent.fake import FakeUnitManager
    from unitctl.config import load_config
    from unitctl.model import Machine

    logging.disable(logging.WARNING)
    prefix = f"{PREFIX}{adapter}/"
    lean = adapter.endswith("-lean")  # /metrics and DNS off
    cfg = load_config("/dev/null", env={}, flags={
        "etcd_servers": endpoint, "etcd_key_prefix": prefix, "agent_ttl": "10s",
        "metrics_address": "off" if lean else f"127.0.0.1:{free_port()}",
        "dns_address": "off" if lean else f"127.0.0.1:{free_port()}"})

    async def go() -> None:
        if adapter == "etcd":
            from unitctl.registry.etcd import EtcdKV
            reg = await daemon.connect(cfg, EtcdKV.connect)
        else:
            reg = await daemon.connect(cfg)
        opts = AgentOptions(ttl=10, peer_port=0)
        agent = Agent(reg, FakeUnitManager(keep_history=False), Machine(MID, "127.0.0.1"),
                      opts, engine=daemon.engine_factory(reg, MID, opts, metered=not lean))
        async with daemon.metrics(cfg, agent), daemon.service_dns(cfg, reg):
            await agent.run(asyncio.Event())

    asyncio.run(go())


def _proc(pid: int) -> tuple[float, float]:
    """(RSS in MiB, CPU seconds) of ``pid``."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss / 1024, (int(fields[11]) + int(fields[12])) / ticks


def stats(xs: list[float]) -> dict[str, float]:
    """p50 / p99 / max of ``xs`` (rounded to 0.1)."""
    s = sorted(xs)
    return {"p50": round(statistics.median(s), 1),
            "p99": round(s[min(len(s) - 1, round(0.99 * (len(s) - 1)))], 1),
            "max": round(s[-1], 1), "samples": len(s)}


def _window(pid: int, seconds: float, port: int) -> dict[str, Any]:
    samples: list[float] = []
    _, cpu0 = _proc(pid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        samples.append(_proc(pid)[0])
        time.sleep(0.5)
    rss1, cpu1 = _proc(pid)
    span = time.monotonic() - t0
    return {"rss_mib": stats([*samples, rss1]),
            "cpu_percent": round(100 * (cpu1 - cpu0) / span, 2),
            "etcd_connections": connections(pid, port)}


def connections(pid: int, port: int) -> int:
    out = subprocess.run([sys.executable, "-c", CONNECTIONS_OF, str(pid), str(port)],
                         capture_output=True, text=True, check=True).stdout
    return int(out)


def rss_floors(python: str = sys.executable, runs: int = 5) -> dict[str, Any]:
    """VmRSS (MiB) of a bare interpreter and of one that imported dbus_fast and asyncio."""
    out = {}
    for name, code in (("python_c_pass", "pass"),
                       ("import_dbus_fast_asyncio", "import dbus_fast, asyncio")):
        kib = [int(subprocess.run([python, "-c", RSS_OF, code], capture_output=True,
                                  text=True, check=True).stdout) for _ in range(runs)]
        out[name] = stats([k / 1024 for k in kib])
    return out


async def _submit(endpoint: str, prefix: str, units: int, timeout: float) -> float:
    from unitctl.model import DesiredState, UnitRecord
    from unitctl.registry.connection import EtcdConfig
    from unitctl.registry.gateway import GatewayKV
    from unitctl.registry.registry import Registry
    from unitctl.unitfile import UnitFile

    reg = Registry(await GatewayKV.connect(EtcdConfig(endpoints=(endpoint,))), prefix)
    try:
        t0 = time.perf_counter()
        for i in range(units):
            uf = UnitFile.parse(f"[Service]\nExecStart=/bin/sleep {1000 + i}\n")
            await reg.create_unit(UnitRecord(f"svc-{i}.service", uf.hash(),
                                             DesiredState.LAUNCHED), uf.serialize())
        while time.perf_counter() - t0 < timeout:
            states = await reg.list_states()
            if sum(s.active == "active" for s in states) >= units:
                return time.perf_counter() - t0
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{units} units not active after {timeout}s")
    finally:
        await reg.close()


async def _wait_registered(endpoint: str, prefix: str) -> None:
    from unitctl.registry.connection import EtcdConfig
    from unitctl.registry.gateway import GatewayKV
    from unitctl.registry.registry import Registry

    reg = Registry(await GatewayKV.connect(EtcdConfig(endpoints=(endpoint,))), prefix)
    try:
        for _ in range(300):
            if await reg.list_machines():
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("agent never registered")
    finally:
        await reg.close()


def measure(url: str, adapter: str, units: int, window: float) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1])
    child = subprocess.Popen([sys.executable, "-m", "bench.footprint", "--child", url,
                              "--adapter", adapter], cwd=str(REPO))
    try:
        asyncio.run(_wait_registered(url, f"{PREFIX}{adapter}/"))
        time.sleep(3)
        idle = _window(child.pid, window, port)
        load_s = asyncio.run(_submit(url, f"{PREFIX}{adapter}/", units, 300)) if units else 0.0
        time.sleep(2)
        busy = _window(child.pid, window, port) if units else {}
    finally:
        child.kill()
        child.wait()
    return {"adapter": adapter, "idle": idle, "busy": busy, "units": units,
            "submit_to_all_active_s": round(load_s, 2)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=500)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--adapter", default="gateway,gateway-lean,etcd",
                   help="comma-separated: gateway (the agent's), gateway-lean (the same with"
                        " /metrics and DNS off), etcd (EtcdKV, for comparison)")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child, args.adapter)
        return {}
    runs = {}
    with etcd_cluster(1) as etcd:
        for adapter in args.adapter.split(","):
            runs[adapter] = measure(etcd.endpoints[0], adapter, args.units, args.window)
    first = runs[args.adapter.split(",")[0]]
    floors = rss_floors()
    result = {"units": args.units, "window_s": args.window, "runs": runs, "floors": floors,
              "idle_rss_mib": first["idle"]["rss_mib"]["max"],
              "idle_cpu_percent": first["idle"]["cpu_percent"],
              "busy_rss_mib": (first["busy"] or {}).get("rss_mib", {}).get("max"),
              "busy_cpu_percent": (first["busy"] or {}).get("cpu_percent"),
              "idle_ratio_to_dbus_asyncio_floor": round(
                  first["idle"]["rss_mib"]["p50"]
                  / floors["import_dbus_fast_asyncio"]["p50"], 2)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
