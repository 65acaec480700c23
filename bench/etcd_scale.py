"""etcd under many idle agents: leases, keepalives and watches (issue 12, item 6).

For each size N (default 1,000 then 5,000), a fresh etcd 3.4 member
(:func:`unitctl_testing.etcd.etcd_cluster`, loopback, ``--unsafe-no-fsync``)
and W worker processes, each one asyncio loop running its share of N real
:class:`~unitctl.agent.agent.Agent` objects over ONE shared ``EtcdKV`` per
process, with :class:`~unitctl.agent.fake.FakeUnitManager` as systemd and no
units: what an idle agent does against etcd, through the agent's own code
(registration under its lease, keepalives every ``ttl/5``, its per-machine
schedule watch, its peer watch, the publisher). The engine is enabled on the
first 3 agents of worker 0 (one leads, the others stand by), as in
``bench/e2e_etcd.py``. The machines register no address, so an agent that
finds etcd silent asks no peers: the fence asks every peer at once, and in a
first run at 5,000 agents on the loaded host, starved agents doing so ran the
worker processes out of file descriptors (5,000 connections per asking agent;
see docs/benchmarks.md). The peer watch itself runs and decodes every event.

Measured per size:

* registration: from the moment every worker is told to start its agents to
  each agent's first ``register_machine`` returning (wall clock, one host),
  p50 / p99 / max (the max is the time until all N are registered), and how
  many registered again (their lease expired: a keepalive came too late);
* at steady state (after a settling pause, over a window): etcd's CPU
  (utime + stime of the etcd process from ``/proc/<pid>/stat``, in % of one
  core), its VmRSS (``/proc/<pid>/status``), and its request rate from its
  ``/metrics`` (``grpc_server_msg_received_total``: every unary request and
  every stream message, each lease keepalive included), per second and per
  1,000 agents; the floor is the keepalives alone, N / keepalive_interval(ttl)
  per second (:func:`unitctl.agent.fencing.keepalive_interval`: ttl/5);
* the lease keepalives' round trips seen by the agents in the window (p50 /
  p99 / max) and their rate: what keeps the rate under the floor;
* the worker processes' CPU over the same window.

``UNITCTL_SCALE_LOG=DIR`` writes the agents' warnings (``DIR/worker<i>.log``).

Usage: ``python -m bench.etcd_scale [--sizes 1000,5000] [--workers 5] [--window 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

from bench.e2e_etcd import etcd_counters, etcd_watchers, watches_settled
from unitctl.agent.fencing import keepalive_interval
from unitctl.model import Machine
from unitctl.sim.workload import make_machines
from unitctl_testing.etcd import etcd_cluster

PREFIX = "/bench/"
TTL = 10


# ---------------------------------------------------------------- worker side

def worker(index: int, workers: int, agents: int, endpoint: str, conn: Connection) -> None:
    asyncio.run(_worker(index, workers, agents, endpoint, conn))


async def _worker(index: int, workers: int, agents: int, endpoint: str,
                  conn: Connection) -> None:
    import logging

    from unitctl.registry.etcd import EtcdConfig, EtcdKV

    logging.disable(logging.WARNING)
    if os.environ.get("UNITCTL_SCALE_LOG"):  # the agents' warnings, one file per worker
        logging.disable(logging.NOTSET)
        logging.basicConfig(filename=os.path.join(os.environ["UNITCTL_SCALE_LOG"],
                                                  f"worker{index}.log"),
                            level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    kv = await EtcdKV.connect(EtcdConfig(endpoints=(endpoint,), timeout=60.0))
    registered: list[tuple[str, float]] = []
    refreshed: list[tuple[float, float]] = []
    reg = _timed_registry(kv, registered, refreshed)
    await reg.ensure_schema()
    machines = make_machines(agents)
    mine = [mid for i, mid in enumerate(sorted(machines)) if i % workers == index]
    conn.send({"connected": True})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # "go"
    stops, tasks = await _start_agents(reg, [machines[m] for m in mine], index == 0)
    cpu0 = time.process_time()
    while not await loop.run_in_executor(None, conn.poll, 0.5):
        new, refreshed[:] = list(refreshed), []
        conn.send({"registered": list(registered), "refreshed": new,
                   "cpu_s": time.process_time() - cpu0,
                   "rss_kib": _status_kib(os.getpid(), "VmRSS")})
    conn.recv()  # "stop"
    for stop in stops:
        stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await kv.close()
    conn.send({"done": True})


def _timed_registry(kv: Any, registered: list[tuple[str, float]],
                    refreshed: list[tuple[float, float]]) -> Any:
    """The real Registry, noting when each registration returned and, for each lease
    keepalive, when it returned and how long its round trip took."""
    from unitctl.registry.leases import KVLeases
    from unitctl.registry.registry import Registry

    class TimedLeases(KVLeases):
        async def refresh(self, lease: int) -> int:
            t0 = time.time()
            ttl = await super().refresh(lease)
            refreshed.append((time.time(), time.time() - t0))
            return ttl

    class TimedRegistry(Registry):
        async def register_machine(self, machine: Machine, lease: int) -> None:
            await super().register_machine(machine, lease)
            registered.append((machine.id, time.time()))

    reg = TimedRegistry(kv, PREFIX)
    reg.leases = TimedLeases(kv)
    return reg


async def _start_agents(reg: Any, machines: list[Machine], with_engine: bool
                        ) -> tuple[list[asyncio.Event], list[asyncio.Task[None]]]:
    """Start one real Agent per machine (the engine on the first 3 of worker 0)."""
    from unitctl.agent.agent import Agent, AgentOptions
    from unitctl.agent.fake import FakeUnitManager
    from unitctl.daemon import engine_factory

    stops: list[asyncio.Event] = []
    tasks: list[asyncio.Task[None]] = []
    for n, m in enumerate(machines):
        engine = with_engine and n < 3
        opts = AgentOptions(ttl=TTL, peer_port=0, engine=engine, engine_resync=60.0)
        agent = Agent(reg, FakeUnitManager(keep_history=False),
                      Machine(m.id, "", m.metadata, "bench"), opts,
                      engine=engine_factory(reg, m.id, opts))
        stop = asyncio.Event()
        stops.append(stop)
        tasks.append(asyncio.create_task(agent.run(stop)))
        if n % 50 == 49:
            await asyncio.sleep(0)  # let the first sessions go out
    return stops, tasks


# ---------------------------------------------------------------- parent side

def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(key + ":"))


def _cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Pool:
    """W worker processes and their latest reports."""

    def __init__(self, count: int, agents: int, endpoint: str) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.last: list[dict[str, Any]] = [{} for _ in range(count)]
        #: (returned at, round trip) of every lease keepalive, all workers
        self.refreshed: list[tuple[float, float]] = []
        for i in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker, args=(i, count, agents, endpoint, child),
                               daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def poll(self) -> list[dict[str, Any]]:
        for i, conn in enumerate(self.conns):
            while conn.poll():
                msg = conn.recv()
                self.refreshed += [tuple(r) for r in msg.pop("refreshed", [])]
                self.last[i] = {**self.last[i], **msg}
        return self.last

    def send(self, msg: str) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(msg)

    def registered(self) -> list[tuple[str, float]]:
        """(machine, when) of every registration, re-registrations included."""
        return [(m, t) for d in self.poll() for m, t in d.get("registered", [])]

    def cpu_s(self) -> float:
        return sum(float(d.get("cpu_s", 0)) for d in self.poll())

    def stop(self) -> None:
        self.send("stop")
        for proc in self.procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()


async def _reached(done: Any, timeout: float) -> bool:
    """Whether ``done()`` became true within ``timeout`` (polled)."""
    t0 = time.perf_counter()
    while not done():
        if time.perf_counter() - t0 > timeout:
            return False
        await asyncio.sleep(0.5)
    return True


async def _wait(what: str, done: Any, timeout: float) -> None:
    """Wait until ``done()`` is true (a benchmark's wait: it polls its workers' reports)."""
    t0 = time.perf_counter()
    while not done():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def one_size(agents: int, workers: int, window: float, settle: float) -> dict[str, Any]:
    """One fresh etcd and ``agents`` agents: registration, then the steady state."""
    with etcd_cluster(1) as etcd:
        url, pid = etcd.endpoints[0], etcd.members[0].proc.pid  # type: ignore[union-attr]
        pool = Pool(workers, agents, url)
        try:
            await _wait("workers connected",
                        lambda: all(d.get("connected") for d in pool.poll()), 120)
            go = time.time()
            pool.send("go")
            await _wait("registration",
                        lambda: len({m for m, _ in pool.registered()}) >= agents, 600)
            first: dict[str, float] = {}
            for machine, at in sorted(pool.registered(), key=lambda r: r[1]):
                first.setdefault(machine, at - go)
            times = list(first.values())
            # every agent's two watches (schedule, peers) created (aetcd creates a
            # channel's watches one at a time; until then the agents are booting), or
            # 300 s passed: then watches_created_s is None and the window is not steady
            watches_all = await _reached(lambda: etcd_watchers(url) >= 2 * agents, 300)
            watchers = await watches_settled(url)
            watches_s = time.time() - go
            await asyncio.sleep(settle)
            before = (etcd_counters(url), _cpu_s(pid), pool.cpu_s(), time.perf_counter())
            w0 = time.time()
            await asyncio.sleep(window)
            after = (etcd_counters(url), _cpu_s(pid), pool.cpu_s(), time.perf_counter())
            trips = [dur for at, dur in pool.refreshed if w0 <= at <= w0 + window]
            again = len(pool.registered()) - len(first)
            return {**_figures(agents, workers, times, before, after, pid, pool),
                    "registrations_again": again,  # leases that expired: registered again
                    "watches_created_s": round(watches_s, 1) if watches_all else None,
                    "etcd_watchers": watchers,
                    "keepalive_round_trip_ms": _ms(trips),
                    "keepalives_per_s_client_side": round(len(trips) / window)}
        finally:
            pool.stop()


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"p50": round(1000 * statistics.median(values), 1),
            "p99": round(1000 * _pct(values, 0.99), 1), "max": round(1000 * max(values), 1),
            "count": len(values)}


def _figures(agents: int, workers: int, times: list[float], before: Any, after: Any,
             pid: int, pool: Pool) -> dict[str, Any]:
    span = after[3] - before[3]
    requests = (after[0]["msg_received"] - before[0]["msg_received"]) / span
    return {
        "agents": agents, "workers": workers, "ttl_s": TTL, "window_s": round(span, 1),
        "registration_s": {"p50": round(statistics.median(times), 2),
                           "p99": round(_pct(times, 0.99), 2), "max": round(max(times), 2),
                           "count": len(times)},
        "etcd_cpu_percent": round(100 * (after[1] - before[1]) / span, 1),
        "etcd_rss_mib": round(_status_kib(pid, "VmRSS") / 1024, 1),
        "etcd_requests_per_s": round(requests),
        "etcd_requests_per_s_per_1000_agents": round(1000 * requests / agents),
        "keepalive_floor_per_s": round(agents / keepalive_interval(TTL)),
        "ratio_to_keepalive_floor": round(requests / (agents / keepalive_interval(TTL)), 2),
        "workers_cpu_percent": round(100 * (after[2] - before[2]) / span, 1),
        "workers_rss_mib": [round(int(d.get("rss_kib", 0)) / 1024, 1) for d in pool.poll()],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,5000", help="agent counts, comma-separated")
    p.add_argument("--workers", type=int, default=5)
    p.add_argument("--window", type=float, default=15.0, help="steady-state window (s)")
    p.add_argument("--settle", type=float, default=20.0, help="pause after registration (s)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = [asyncio.run(one_size(n, args.workers, args.window, args.settle)) for n in sizes]
    result = {"sizes": runs, "largest": runs[-1]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
