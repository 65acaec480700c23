"""End to end through a real etcd: many simulated agents, 10,000 units.

One etcd 3.4 member (unitctl_testing/etcd.py, loopback, --unsafe-no-fsync) and
W worker processes, each one asyncio loop running its share of the agents:
real :class:`~unitctl.agent.agent.Agent` code (per-agent lease, keepalives,
schedule watch, state publishing) over ONE shared EtcdKV (one gRPC channel)
per process, with :class:`~unitctl.agent.fake.FakeUnitManager` as systemd.
The engine runs inside the first three agents of worker 0 (one leads).

Measured:

* ``submit_to_active_s``: from the first submit of N units (launched) to every
  one reported active in etcd by its agent (counted from the agents' state
  writes), and placements/s = N / that time;
* ``single_start_ms``: submit one more unit -> reported active, p50/p99;
* ``wakes_per_change``: agents whose schedule watch fired, per single-unit
  submit in steady state (goal: exactly 1);
* ``etcd_requests_per_s``: steady state (nothing changing), from etcd's
  Prometheus ``grpc_server_msg_received_total`` (every unary request and
  every stream message, e.g. each lease keepalive) over a window.

Usage: ``python -m bench.e2e_etcd [--agents 1000] [--units 10000] [--workers 4]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import re
import statistics
import time
import urllib.request
from multiprocessing.connection import Connection
from typing import Any

from unitctl.model import DesiredState, Machine, Requirements, UnitRecord
from unitctl.sim.workload import make_machines, make_units
from unitctl_testing.etcd import etcd_cluster

PREFIX = "/bench/"


def unit_text(req: Requirements) -> str:
    """A unit file carrying ``req`` in its [X-Fleet] section."""
    lines = ["[Service]", "ExecStart=/bin/sleep infinity", "[X-Fleet]"]
    for key, values in sorted(req.metadata.items()):
        lines += [f"MachineMetadata={key}={v}" for v in sorted(values)]
    lines += [f"Conflicts={c}" for c in req.conflicts]
    lines += [f"MachineOf={m}" for m in req.machine_of]
    if req.machine_id:
        lines.append(f"MachineID={req.machine_id}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- worker side

def worker(index: int, workers: int, agents: int, endpoint: str, conn: Connection) -> None:
    asyncio.run(_worker(index, workers, agents, endpoint, conn))


async def _worker(index: int, workers: int, agents: int, endpoint: str,
                  conn: Connection) -> None:
    import logging

    from unitctl.agent.agent import Agent, AgentOptions
    from unitctl.agent.fake import FakeUnitManager
    from unitctl.daemon import engine_factory
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry

    logging.disable(logging.WARNING)
    kv = await EtcdKV.connect(EtcdConfig(endpoints=(endpoint,), timeout=30.0))
    registry = Registry(kv, PREFIX)
    await registry.ensure_schema()
    machines = make_machines(agents)
    mine = [mid for i, mid in enumerate(sorted(machines)) if i % workers == index]
    wakes = [0]
    active: dict[tuple[str, str], bool] = {}

    class CountingRegistry(Registry):
        """The real Registry; counts schedule-watch wake-ups and published states."""

        def watch_schedule(self, machine_id: str, start_rev: int) -> Any:
            inner = super().watch_schedule(machine_id, start_rev)

            async def counted() -> Any:
                async for batch in inner:
                    wakes[0] += 1
                    yield batch
            return counted()

        async def put_state(self, state: Any, lease: int) -> None:
            await super().put_state(state, lease)
            active[(state.name, state.machine_id)] = state.active == "active"

        async def delete_state(self, name: str, machine_id: str) -> None:
            active.pop((name, machine_id), None)
            await super().delete_state(name, machine_id)

        async def publish_states(self, machine_id: str, states: Any, lease: int) -> None:
            await super().publish_states(machine_id, states, lease)
            for name, st in states.items():
                if st is None:
                    active.pop((name, machine_id), None)
                else:
                    active[(name, machine_id)] = st.active == "active"

    reg = CountingRegistry(kv, PREFIX)
    stops = []
    tasks = []
    t0 = time.perf_counter()
    for n, mid in enumerate(mine):
        engine = index == 0 and n < 3
        m = machines[mid]
        opts = AgentOptions(ttl=10, peer_port=0, engine=engine, engine_resync=60.0)
        agent = Agent(reg, FakeUnitManager(keep_history=False),
                      Machine(mid, m.public_ip, m.metadata, "bench"), opts,
                      engine=engine_factory(reg, mid, opts))
        stop = asyncio.Event()
        stops.append(stop)
        tasks.append(asyncio.create_task(agent.run(stop)))
        if n % 25 == 24:
            await asyncio.sleep(0.05)
    conn.send({"ready": len(mine), "start_s": time.perf_counter() - t0})
    loop = asyncio.get_running_loop()
    cpu0 = time.process_time()
    while True:
        if await loop.run_in_executor(None, conn.poll, 0.2):
            msg = conn.recv()
            if msg == "stop":
                break
        conn.send({"wakes": wakes[0], "active": sum(active.values()),
                   "cpu_s": time.process_time() - cpu0})
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await kv.close()
    conn.send({"done": True})


# ---------------------------------------------------------------- parent side

class Workers:
    def __init__(self, count: int, agents: int, endpoint: str) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        self.last: list[dict[str, Any]] = [{} for _ in range(count)]
        for i in range(count):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker, args=(i, count, agents, endpoint, child), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)

    def poll(self) -> dict[str, float]:
        for i, c in enumerate(self.conns):
            while c.poll():
                msg = c.recv()
                self.last[i] = {**self.last[i], **msg}
        return {k: sum(float(d.get(k, 0)) for d in self.last)
                for k in ("wakes", "active", "ready", "cpu_s")}

    async def wait(self, key: str, target: float, timeout: float) -> float:
        t0 = time.perf_counter()
        while self.poll()[key] < target:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"{key} {self.poll()[key]} < {target} after {timeout}s")
            await asyncio.sleep(0.02)
        return time.perf_counter() - t0

    def stop(self) -> None:
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.send("stop")
        for p in self.procs:
            p.join(20)
            if p.is_alive():
                p.kill()


def etcd_counters(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {"msg_received": 0.0, "handled": 0.0}
    for line in text.splitlines():
        m = re.match(r"grpc_server_(msg_received|handled)_total\{[^}]*\} ([0-9.e+]+)", line)
        if m:
            out[m.group(1)] += float(m.group(2))
    return out


async def submit_all(reg: Any, units: dict[str, Requirements], parallel: int = 8) -> None:
    """Submit through the batch API, a few transactions in flight at once."""
    from unitctl.unitfile import UnitFile

    batch: list[tuple[UnitRecord, str]] = []
    for name, req in units.items():
        uf = UnitFile.parse(unit_text(req))
        batch.append((UnitRecord(name, uf.hash(), DesiredState.LAUNCHED), uf.serialize()))
    size = max(1, len(batch) // parallel + 1)
    await asyncio.gather(*(reg.create_units(batch[i:i + size])
                           for i in range(0, len(batch), size)))


async def run(agents: int, units: int, workers: int, window: float, probes: int,
              url: str) -> dict[str, Any]:
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry

    kv = await EtcdKV.connect(EtcdConfig(endpoints=(url,), timeout=30.0))
    reg = Registry(kv, PREFIX)
    await reg.ensure_schema()
    t_boot = time.perf_counter()
    pool = Workers(workers, agents, url)
    try:
        await pool.wait("ready", agents, 600)
        # wait until every agent registered its machine
        while len(await reg.list_machines()) < agents:
            await asyncio.sleep(0.2)
        boot_s = time.perf_counter() - t_boot
        await asyncio.sleep(2)
        workload = make_units(units, agents, globals_=False)
        req0 = etcd_counters(url)
        t0 = time.perf_counter()
        await submit_all(reg, workload)
        submit_s = time.perf_counter() - t0
        placeable = await _placeable(reg, len(workload))
        await pool.wait("active", placeable, 900)
        total_s = time.perf_counter() - t0
        req1 = etcd_counters(url)
        # steady state
        await asyncio.sleep(3)
        c0, s0, t_w = etcd_counters(url), pool.poll(), time.perf_counter()
        await asyncio.sleep(window)
        c1, s1, t_w1 = etcd_counters(url), pool.poll(), time.perf_counter()
        span = t_w1 - t_w
        # single-unit probes
        lat, wakes = [], []
        for i in range(probes):
            before = pool.poll()
            t = time.perf_counter()
            await submit_all(reg, {f"probe-{i}.service": Requirements()})
            await pool.wait("active", before["active"] + 1, 60)
            lat.append(time.perf_counter() - t)
            await asyncio.sleep(0.3)
            wakes.append(pool.poll()["wakes"] - before["wakes"])
        return {
            "agents": agents, "workers": workers, "units": units, "placed_active": placeable,
            "boot_s": round(boot_s, 1), "submit_s": round(submit_s, 2),
            "submit_to_active_s": round(total_s, 2),
            "placements_per_s": round(placeable / total_s),
            "etcd_requests_during_rollout": int(req1["msg_received"] - req0["msg_received"]),
            "etcd_requests_per_s_steady": round((c1["msg_received"] - c0["msg_received"]) / span),
            "etcd_unary_and_streams_per_s_steady": round((c1["handled"] - c0["handled"]) / span),
            "agent_cpu_percent_steady": round(100 * (s1["cpu_s"] - s0["cpu_s"]) / span, 1),
            "single_start_ms_p50": round(1000 * statistics.median(lat), 1),
            "single_start_ms_p99": round(1000 * max(lat), 1),
            "wakes_per_change": wakes,
            "wakes_per_change_median": statistics.median(wakes),
        }
    finally:
        pool.stop()
        await kv.close()


async def _placeable(reg: Any, count: int) -> int:
    """Wait for the engine to have placed (or explained) every unit; return placed count."""
    for _ in range(3000):
        placements = await reg.list_placements()
        explained = await reg.list_explanations()
        if len(placements) + len(explained) >= count:
            return len(placements)
        await asyncio.sleep(0.2)
    raise TimeoutError("the engine did not place every unit")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--units", type=int, default=10000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--window", type=float, default=10.0, help="steady-state window (s)")
    p.add_argument("--probes", type=int, default=20)
    args = p.parse_args(argv)
    with etcd_cluster(1) as etcd:
        result = asyncio.run(run(args.agents, args.units, args.workers, args.window,
                                 args.probes, etcd.endpoints[0]))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
