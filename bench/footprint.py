"""Agent footprint: RSS and CPU of one agent process, idle and with 500 units.

The child process is one real :class:`~unitctl.agent.agent.Agent` (engine
enabled, as the default agent) over :class:`~unitctl.registry.etcd.EtcdKV`
against a throw-away etcd, with :class:`~unitctl.agent.fake.FakeUnitManager`
standing in for systemd; it also imports the daemon and the D-Bus adapter
(``unitctl.daemon``, ``unitctl.systemd``, dbus-fast), so the modules loaded
are those of the real agent. RSS is VmRSS from /proc, CPU is utime+stime over
a window. The machine is alone, so it also runs the engine for its 500 units.

Usage: ``python -m bench.footprint [--units 500] [--window 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from unitctl_testing.etcd import etcd_cluster

PREFIX = "/footprint/"
MID = "f00dfeed" + "0" * 24


def _child(endpoint: str) -> None:
    import logging

    import unitctl.daemon
    import unitctl.systemd.manager
    from unitctl.agent.agent import Agent, AgentOptions
    from unitctl.agent.fake import FakeUnitManager
    from unitctl.model import Machine
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry

    logging.disable(logging.WARNING)

    async def go() -> None:
        kv = await EtcdKV.connect(EtcdConfig(endpoints=(endpoint,)))
        reg = Registry(kv, PREFIX)
        await reg.ensure_schema()
        opts = AgentOptions(ttl=10, peer_port=0)
        agent = Agent(reg, FakeUnitManager(keep_history=False), Machine(MID, "127.0.0.1"),
                      opts, engine=unitctl.daemon.engine_factory(reg, MID, opts))
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


def _window(pid: int, seconds: float) -> dict[str, float]:
    rss0, cpu0 = _proc(pid)
    t0 = time.monotonic()
    time.sleep(seconds)
    rss1, cpu1 = _proc(pid)
    span = time.monotonic() - t0
    return {"rss_mib": round(max(rss0, rss1), 1),
            "cpu_percent": round(100 * (cpu1 - cpu0) / span, 2)}


async def _submit(endpoint: str, units: int, timeout: float) -> float:
    from unitctl.model import DesiredState, UnitRecord
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry
    from unitctl.unitfile import UnitFile

    kv = await EtcdKV.connect(EtcdConfig(endpoints=(endpoint,)))
    reg = Registry(kv, PREFIX)
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
        await kv.close()


async def _wait_registered(endpoint: str) -> None:
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry

    kv = await EtcdKV.connect(EtcdConfig(endpoints=(endpoint,)))
    try:
        for _ in range(300):
            if await Registry(kv, PREFIX).list_machines():
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("agent never registered")
    finally:
        await kv.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=500)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child)
        return {}
    with etcd_cluster(1) as etcd:
        url = etcd.endpoints[0]
        child = subprocess.Popen([sys.executable, "-m", "bench.footprint", "--child", url],
                                 cwd=str(Path(__file__).resolve().parents[1]))
        try:
            asyncio.run(_wait_registered(url))
            time.sleep(2)
            idle = _window(child.pid, args.window)
            load_s = asyncio.run(_submit(url, args.units, 300))
            time.sleep(2)
            busy = _window(child.pid, args.window)
        finally:
            child.kill()
            child.wait()
    result = {"units": args.units, "idle_rss_mib": idle["rss_mib"],
              "idle_cpu_percent": idle["cpu_percent"],
              "busy_rss_mib": busy["rss_mib"],
              "busy_cpu_percent": busy["cpu_percent"],
              "submit_to_all_active_s": round(load_s, 2), "window_s": args.window}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
