"""End to end through a real etcd and the real CLI: 1,000 agents, 10,000 units.

One etcd 3.4 member (unitctl_testing/etcd.py, loopback, --unsafe-no-fsync) and
W worker processes, each one asyncio loop running its share of the agents:
real :class:`~unitctl.agent.agent.Agent` code (per-agent lease, keepalives,
schedule watch, state publishing) over ONE shared EtcdKV (one gRPC channel)
per process, with :class:`~unitctl.agent.fake.FakeUnitManager` as systemd.
The engine runs inside three of worker 0's agents (one leads), beside its 250
others; ``--engine-process`` runs them in a process of their own, as the
engine's agent is in production (on 2 cores that is slower: 5 processes share
them, the engine places in more, smaller rounds and the agents write more
transactions, docs/benchmarks.md).
The units go in as a user puts them: the real ``unitctl`` command, one process
per call, from this tree (``submit svc@{1..N}`` of a template, then
``start --no-block`` of the same names).

Measured:

* ``rollout``: from the launch of ``start --no-block`` to every instance
  reported active in etcd by its agent (counted from the agents' state
  writes); placements/s = N / that time; each unit's time from the launch of
  the start command to its first "active" state write (p50/p99/max); etcd
  requests during it, per gRPC method;
* ``etcd_requests_per_s_steady``: steady state (nothing changing), from etcd's
  Prometheus ``grpc_server_msg_received_total`` (every unary request and
  every stream message, e.g. each lease keepalive) over a window;
* ``single_start``: ``unitctl start --no-block`` of one more unit (CLI start-up
  included) -> reported active; ``wakes_per_change``: agents whose schedule
  watch fired per such start (goal: exactly 1);
* ``floor_batched_puts``: the floor, in the same run: the rollout's minimum
  writes (placement, schedule entry and state: 3 keys per unit) put by one
  client in transactions of 120, one after another.

``UNITCTL_E2E_PROFILE=DIR`` also writes a sampling profile of each worker
(``DIR/worker<i>.json``) and the engine's log (``DIR/engine.log``).

Usage: ``python -m bench.e2e_etcd [--agents 1000] [--units 10000] [--workers 4]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from unitctl.model import Machine, Requirements
from unitctl.sim.workload import make_machines
from unitctl_testing.etcd import etcd_cluster

PREFIX = "/bench/"
REPO = Path(__file__).resolve().parents[1]


def unit_text(req: Requirements) -> str:
    """A unit file carrying ``req`` in its [X-Fleet] section (bench/engine_round.py)."""
    lines = ["[Service]", "ExecStart=/bin/sleep infinity", "[X-Fleet]"]
    for key, values in sorted(req.metadata.items()):
        lines += [f"MachineMetadata={key}={v}" for v in sorted(values)]
    lines += [f"Conflicts={c}" for c in req.conflicts]
    lines += [f"MachineOf={m}" for m in req.machine_of]
    if req.machine_id:
        lines.append(f"MachineID={req.machine_id}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- worker side

def _log_to(path: str) -> None:
    """Warnings of every agent, and the engine's rounds (not its per-unit lines)."""
    import logging

    logging.disable(logging.NOTSET)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(created).3f %(name)s %(message)s"))
    handler.addFilter(lambda r: r.levelno >= logging.WARNING or "round at" in str(r.msg)
                      or "leader" in str(r.msg))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("unitctl.engine").setLevel(logging.DEBUG)


#: the agents that run the engine (one leads, two campaign)
ENGINES = 3


def _machines_of(index: int, workers: int, machines: list[str], shared_engine: bool) -> list[str]:
    """The machines worker ``index`` runs agents for: with ``shared_engine`` (the
    default) the first :data:`ENGINES` share worker 0's event loop with its other
    agents; otherwise (``--engine-process``) they run alone in the extra process
    ``index == workers``, as the engine's agent does in production (one agent
    per process), and the workers share the rest."""
    if shared_engine:
        return [mid for i, mid in enumerate(machines) if i % workers == index]
    if index == workers:
        return machines[:ENGINES]
    return [mid for i, mid in enumerate(machines[ENGINES:]) if i % workers == index]


def worker(index: int, workers: int, agents: int, endpoint: str, conn: Connection,
           shared_engine: bool = True) -> None:
    out = os.environ.get("UNITCTL_E2E_PROFILE", "")
    sampler = None if not out else Sampler(os.path.join(out, f"worker{index}.json"))
    try:
        asyncio.run(_worker(index, workers, agents, endpoint, conn, shared_engine))
    finally:
        if sampler is not None:
            sampler.dump()


class Sampler:
    """A sampling profiler of the main thread, every 5 ms of the process's CPU
    time (``ITIMER_PROF``): where the CPU goes, at a cost low enough not to move
    it (cProfile slows 250 agents several-fold). A thread sampling
    ``sys._current_frames()`` would see the main thread only where it drops the
    GIL (in ``select``), so it would hide the Python code between those points."""

    def __init__(self, path: str, interval: float = 0.005) -> None:
        import signal

        self.path = path
        self.self_counts: dict[str, int] = {}
        self.total_counts: dict[str, int] = {}
        self.samples = 0
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, interval, interval)

    def _sample(self, _signum: int, frame: Any) -> None:
        self.samples += 1
        seen: set[str] = set()
        leaf = True
        while frame is not None:
            code = frame.f_code
            where = f"{code.co_filename.rsplit('site-packages/', 1)[-1]}:{code.co_name}"
            if leaf:
                self.self_counts[where] = self.self_counts.get(where, 0) + 1
                leaf = False
            if where not in seen:
                seen.add(where)
                self.total_counts[where] = self.total_counts.get(where, 0) + 1
            frame = frame.f_back

    def dump(self) -> None:
        import signal

        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        top = {"samples": self.samples,
               "self": sorted(self.self_counts.items(), key=lambda kv: -kv[1])[:60],
               "total": sorted(self.total_counts.items(), key=lambda kv: -kv[1])[:120]}
        with open(self.path, "w") as f:
            json.dump(top, f, indent=1)


class CountingKV:
    """A worker's KV, counting its requests by method and the key families they
    touch (``txn:services,states``): what the agents and the engine send during
    the rollout."""

    COUNTED = frozenset({"txn", "get", "get_many", "get_prefix", "put", "delete"})

    def __init__(self, inner: Any, counts: dict[str, int]) -> None:
        self.inner = inner
        self.counts = counts

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.COUNTED:
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            key = f"{name}:{self.families(name, args)}"
            self.counts[key] = self.counts.get(key, 0) + 1
            return await attr(*args, **kwargs)
        return call

    @staticmethod
    def families(method: str, args: tuple[Any, ...]) -> str:
        if method == "txn":
            keys = [str(getattr(op, "key", "")) for op in list(args[1]) + list(args[0])]
        elif method == "get_many":
            keys = list(args[0])
        else:
            keys = [str(args[0])] if args else []
        return ",".join(sorted({k[len(PREFIX):].split("/", 1)[0] for k in keys}))


async def _worker(index: int, workers: int, agents: int, endpoint: str,
                  conn: Connection, shared_engine: bool) -> None:
    import logging

    from unitctl.agent.agent import Agent, AgentOptions
    from unitctl.agent.fake import FakeUnitManager
    from unitctl.daemon import engine_factory
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry

    logging.disable(logging.WARNING)
    if os.environ.get("UNITCTL_E2E_PROFILE"):
        _log_to(os.path.join(os.environ["UNITCTL_E2E_PROFILE"], f"worker{index}.log"))
    counts: dict[str, int] = {}
    kv: Any = CountingKV(await EtcdKV.connect(EtcdConfig(endpoints=(endpoint,), timeout=30.0)),
                         counts)
    registry = Registry(kv, PREFIX)
    await registry.ensure_schema()
    machines = make_machines(agents)
    mine = _machines_of(index, workers, sorted(machines), shared_engine)
    wakes = [0]
    publishes = [0]
    active: dict[tuple[str, str], bool] = {}
    first_active: dict[str, float] = {}

    def seen(name: str, machine_id: str, is_active: bool) -> None:
        active[(name, machine_id)] = is_active
        if is_active and name not in first_active:
            first_active[name] = time.time()

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
            seen(state.name, state.machine_id, state.active == "active")

        async def delete_state(self, name: str, machine_id: str) -> None:
            active.pop((name, machine_id), None)
            await super().delete_state(name, machine_id)

        async def publish_states(self, machine_id: str, states: Any, lease: int,
                                 services: Any = None) -> None:
            await super().publish_states(machine_id, states, lease, services)
            publishes[0] += 1
            for name, st in states.items():
                if st is None:
                    active.pop((name, machine_id), None)
                else:
                    seen(name, machine_id, st.active == "active")

    reg = CountingRegistry(kv, PREFIX)
    stops = []
    tasks = []
    t0 = time.perf_counter()
    for n, mid in enumerate(mine):
        engine = index == (0 if shared_engine else workers) and n < ENGINES
        m = machines[mid]
        opts = AgentOptions(ttl=10, peer_port=0, engine=engine, engine_resync=60.0)
        # an engine's agent has its own connection, as in production (one agent per
        # process): aetcd creates a channel's watches one at a time, and the engine's
        # must not queue behind 250 agents' watches
        own = CountingRegistry(CountingKV(await EtcdKV.connect(
            EtcdConfig(endpoints=(endpoint,), timeout=30.0)), counts), PREFIX) if engine else reg
        agent = Agent(own, FakeUnitManager(keep_history=False),
                      Machine(mid, m.public_ip, m.metadata, "bench"), opts,
                      engine=engine_factory(own, mid, opts))
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
            if msg == "reset":
                first_active.clear()
                continue
            if msg == "freeze":  # start-up is over: as the daemon does once ready
                gc.collect()
                gc.freeze()
                continue
            if msg == "counts":
                conn.send({"counts": dict(counts)})
                continue
            if msg == "times":
                conn.send({"times": dict(first_active)})
                continue
        conn.send({"wakes": wakes[0], "publishes": publishes[0],
                   "active": sum(active.values()),
                   "cpu_s": time.process_time() - cpu0})
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await kv.close()
    conn.send({"done": True})


# ---------------------------------------------------------------- parent side

class Workers:
    """The agent processes: ``count`` workers, plus the engine's own process
    unless ``shared_engine`` (:func:`_machines_of`)."""

    def __init__(self, count: int, agents: int, endpoint: str,
                 shared_engine: bool = True) -> None:
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        procs = count if shared_engine else count + 1
        self.last: list[dict[str, Any]] = [{} for _ in range(procs)]
        for i in range(procs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker, args=(i, count, agents, endpoint, child,
                                                 shared_engine), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)

    def poll(self) -> dict[str, float]:
        for i, c in enumerate(self.conns):
            while c.poll():
                msg = c.recv()
                self.last[i] = {**self.last[i], **msg}
        return {k: sum(float(d.get(k, 0)) for d in self.last)
                for k in ("wakes", "publishes", "active", "ready", "cpu_s")}

    async def wait(self, key: str, target: float, timeout: float,
                   progress: bool = False, below: bool = False) -> float:
        """Wait until the workers' ``key`` reaches ``target`` (``below``: falls to it)."""
        t0 = last = time.perf_counter()
        while (self.poll()[key] > target) if below else (self.poll()[key] < target):
            if progress and time.perf_counter() - last > 2:
                last = time.perf_counter()
                print(f"  {key}: {self.poll()[key]:.0f}/{target:.0f} after "
                      f"{last - t0:.1f}s", file=sys.stderr, flush=True)
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"{key} {self.poll()[key]} < {target} after {timeout}s")
            await asyncio.sleep(0.02)
        return time.perf_counter() - t0

    def freeze(self) -> None:
        """Every worker moves what its start-up left into the permanent generation."""
        for c in self.conns:
            c.send("freeze")

    def reset(self) -> None:
        """Forget when each unit first became active (before a rollout of the same names)."""
        for c in self.conns:
            c.send("reset")

    def counts(self) -> dict[str, int]:
        """Every worker's KV requests so far, by method and key families (:class:`CountingKV`)."""
        for c in self.conns:
            c.send("counts")
        out: dict[str, int] = {}
        for i, c in enumerate(self.conns):
            while True:
                msg = c.recv()
                if "counts" in msg:
                    for k, v in msg["counts"].items():
                        out[k] = out.get(k, 0) + v
                    break
                self.last[i] = {**self.last[i], **msg}
        return out

    def times(self) -> dict[str, float]:
        """unit -> wall time its agent first published it active (every worker's)."""
        for c in self.conns:
            c.send("times")
        out: dict[str, float] = {}
        for i, c in enumerate(self.conns):
            while True:
                msg = c.recv()
                if "times" in msg:
                    out.update(msg["times"])
                    break
                self.last[i] = {**self.last[i], **msg}
        return out

    def stop(self) -> None:
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.send("stop")
        for p in self.procs:
            p.join(20)
            if p.is_alive():
                p.kill()


def etcd_counters(url: str) -> dict[str, float]:
    """etcd's request counters: every message received, every call handled, and
    the calls handled per gRPC method (``by_method/<Service>.<Method>``)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {"msg_received": 0.0, "handled": 0.0}
    for line in text.splitlines():
        m = re.match(r"grpc_server_(msg_received|handled)_total\{([^}]*)\} ([0-9.e+]+)", line)
        if not m:
            continue
        out[m.group(1)] += float(m.group(3))
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if m.group(1) == "msg_received":
            key = f"by_method/{labels.get('grpc_service', '').rsplit('.', 1)[-1]}." \
                  f"{labels.get('grpc_method', '')}"
            out[key] = out.get(key, 0.0) + float(m.group(3))
    return out


def counter_diff(a: dict[str, float], b: dict[str, float]) -> dict[str, int]:
    """Per-method messages received between two readings (methods that moved)."""
    return {k.split("/", 1)[1]: int(b[k] - a.get(k, 0.0)) for k in sorted(b)
            if k.startswith("by_method/") and b[k] - a.get(k, 0.0) > 0}


TEMPLATE = "[Unit]\nDescription=bench %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"


class Cli:
    """The real ``unitctl`` command, one process per call, from this tree, with an
    interpreter as ``pip install .`` leaves it (:mod:`bench.installed`: no editable
    finder at each start), as the other CLI benchmarks run it."""

    def __init__(self, url: str, work: str) -> None:
        from bench.installed import installed_python

        self.argv = [installed_python(work), "-m", "unitctl", "--endpoint", url,
                     "--etcd-key-prefix", PREFIX]
        self.work = work
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}

    async def __call__(self, *args: str) -> float:
        """Run ``unitctl ARGS``; return its wall time (raise if it fails)."""
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *self.argv, *args, cwd=self.work, env=self.env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"unitctl {args[:2]} exited {proc.returncode}: {err[:300]!r}")
        return time.perf_counter() - t0


def stats_ms(samples: list[float]) -> dict[str, float]:
    """p50 / p99 / max of ``samples`` (seconds), in ms."""
    s = sorted(samples)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    return {"p50_ms": round(statistics.median(s) * 1000, 1), "p99_ms": round(p99 * 1000, 1),
            "max_ms": round(s[-1] * 1000, 1), "count": len(s)}


async def put_floor(url: str, units: int, keys_per_unit: int = 3) -> dict[str, Any]:
    """etcd's own floor for the rollout's writes, in the same run: the same number
    of keys (placement + schedule entry + state per unit) put in transactions of
    MAX_TXN_OPS, one after another, by one client (no reads, no watches)."""
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.kv import MAX_TXN_OPS, Put

    kv = await EtcdKV.connect(EtcdConfig(endpoints=(url,), timeout=30.0))
    value = b'{"hash":"' + b"0" * 64 + b'","desired":"launched"}'
    ops = [Put(f"/floor/k{i:07d}", value) for i in range(units * keys_per_unit)]
    try:
        t0 = time.perf_counter()
        for i in range(0, len(ops), MAX_TXN_OPS):
            await kv.txn([], ops[i:i + MAX_TXN_OPS])
        took = time.perf_counter() - t0
        await kv.delete("/floor/", prefix=True)
    finally:
        await kv.close()
    return {"keys": len(ops), "txns": -(-len(ops) // MAX_TXN_OPS), "seconds": round(took, 2),
            "units_per_s": round(units / took)}


def etcd_watchers(url: str) -> int:
    """How many watchers etcd has (its ``etcd_debugging_mvcc_watcher_total``)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^etcd_debugging_mvcc_watcher_total ([0-9.e+]+)", text, re.M)
    return int(float(m.group(1))) if m else 0


async def watches_settled(url: str, quiet: float = 3.0) -> int:
    """Wait until etcd's count of watchers has not moved for ``quiet`` seconds (every
    agent's watches are created: aetcd creates a channel's watches one at a time,
    so 250 agents on one channel take a while); return the count."""
    last, since = etcd_watchers(url), time.perf_counter()
    while time.perf_counter() - since < quiet:
        await asyncio.sleep(0.5)
        now = etcd_watchers(url)
        if now != last:
            last, since = now, time.perf_counter()
    return last


def pid_cpu_s(pid: int) -> float:
    """A process's user + system CPU seconds so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children (the CLI processes)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class CpuMeter:
    """CPU seconds each process kind spent between :meth:`start` and :meth:`stop`:
    etcd, each worker (worker 0, or with --engine-process the last, runs the
    engine's agents), the CLI processes,
    and this bench process (which polls): where the rollout's core-seconds go."""

    def __init__(self, pool: Workers, etcd_pid: int) -> None:
        self.pool, self.etcd_pid = pool, etcd_pid
        self.first: dict[str, Any] = {}

    def _read(self) -> dict[str, Any]:
        self.pool.poll()
        return {"etcd": pid_cpu_s(self.etcd_pid), "cli": children_cpu_s(),
                "bench": time.process_time(), "wall": time.perf_counter(),
                "workers": [float(d.get("cpu_s", 0)) for d in self.pool.last]}

    def start(self) -> None:
        self.first = self._read()

    def stop(self) -> dict[str, Any]:
        a, b = self.first, self._read()
        workers = [round(y - x, 2) for x, y in zip(a["workers"], b["workers"], strict=True)]
        parts = {"etcd_s": round(b["etcd"] - a["etcd"], 2),
                 "cli_s": round(b["cli"] - a["cli"], 2),
                 "bench_s": round(b["bench"] - a["bench"], 2),
                 "workers_s": workers, "agents_s": round(sum(workers), 2)}
        wall = b["wall"] - a["wall"]
        total = parts["etcd_s"] + parts["cli_s"] + parts["bench_s"] + parts["agents_s"]
        return {**parts, "total_s": round(total, 2), "wall_s": round(wall, 2),
                "cores_busy": round(total / wall, 2), "nproc": os.cpu_count(),
                "note": "the workers report their CPU every 0.2 s: worker figures are "
                        "within about 0.2 s x cores; the last process runs the engine's "
                        "agents with --engine-process, else worker 0 does"}


async def rollouts(pool: Workers, cli: Cli, url: str, units: int, etcd_pid: int,
                   count: int) -> dict[str, Any]:
    """``count`` rollouts of the same units, each from nothing (``unitctl destroy``
    of them all in between, until no agent reports one): every run's figures, and
    the run with the median placements/s as ``rollout`` (one run varies by a
    third on this host: how many rounds the engine splits the stream into)."""
    names = [f"svc@{i}.service" for i in range(1, units + 1)]
    runs = []
    for i in range(count):
        if i:
            await cli("destroy", *names)
            try:
                await pool.wait("active", 0, 300, below=True)
            except TimeoutError:
                print(f"left after the destroy: {await key_counts(url)}", file=sys.stderr)
                raise
            await asyncio.sleep(2)
        runs.append(await rollout(pool, cli, url, units, etcd_pid))
    ranked = sorted(runs, key=lambda r: r["placements_per_s"])
    return {"rollout": ranked[len(ranked) // 2],
            "rollouts": [{k: r[k] for k in ("placements_per_s", "start_to_all_active_s",
                                            "start_no_block_s", "unit_to_active",
                                            "agents_schedule_wakes", "agents_state_writes")}
                         | {"cores_busy": r["cpu_during_rollout"]["cores_busy"],
                            "cpu_s": r["cpu_during_rollout"]["total_s"],
                            "txn": r["etcd_requests_during_rollout_by_method"].get("KV.Txn", 0)}
                         for r in runs]}


async def key_counts(url: str) -> dict[str, int]:
    """How many keys each family holds (what a destroy left behind)."""
    from unitctl.registry.etcd import EtcdConfig, EtcdKV

    kv = await EtcdKV.connect(EtcdConfig(endpoints=(url,), timeout=30.0))
    try:
        return {fam: len((await kv.get_prefix(PREFIX + fam)).kvs)
                for fam in ("units/", "placements/", "schedule/", "states/", "services/")}
    finally:
        await kv.close()


async def rollout(pool: Workers, cli: Cli, url: str, units: int,
                  etcd_pid: int) -> dict[str, Any]:
    """``unitctl submit`` then ``unitctl start --no-block`` of svc@{1..units}; wait
    until every instance is reported active; time each unit from the start; the
    CPU each process kind spent meanwhile."""
    names = [f"svc@{i}.service" for i in range(1, units + 1)]
    pool.reset()
    submit_s = await cli("submit", *names)
    await asyncio.sleep(1)
    req0 = etcd_counters(url)
    meter = CpuMeter(pool, etcd_pid)
    meter.start()
    before = pool.poll()
    c0 = pool.counts()
    t0_wall, t0 = time.time(), time.perf_counter()
    start_s = await cli("start", "--no-block", *names)
    await pool.wait("active", units, 900, progress=True)
    total_s = time.perf_counter() - t0
    await asyncio.sleep(0.25)  # one more report of every worker's CPU
    cpu = meter.stop()
    after = pool.poll()
    c1 = pool.counts()
    req1 = etcd_counters(url)
    times = pool.times()
    to_active = [times[n] - t0_wall for n in names if n in times]
    return {
        "command": f"unitctl submit svc@{{1..{units}}}; unitctl start --no-block "
                   f"svc@{{1..{units}}} (the real CLI, one process each)",
        "submit_s": round(submit_s, 2), "start_no_block_s": round(start_s, 2),
        "start_to_all_active_s": round(total_s, 2),
        "placements_per_s": round(units / total_s),
        "placements_per_s_after_start_returned": round(units / (total_s - start_s)),
        "unit_to_active": stats_ms(to_active),
        "etcd_requests_during_rollout": int(req1["msg_received"] - req0["msg_received"]),
        "etcd_requests_during_rollout_by_method": counter_diff(req0, req1),
        "cpu_during_rollout": cpu,
        "agents_schedule_wakes": int(after["wakes"] - before["wakes"]),
        "agents_state_writes": int(after["publishes"] - before["publishes"]),
        "workers_requests_by_family": {k: c1[k] - c0.get(k, 0) for k in sorted(c1)
                                       if c1[k] - c0.get(k, 0)},
    }


async def steady(pool: Workers, url: str, window: float) -> dict[str, Any]:
    """etcd requests/s and the agents' CPU with nothing changing."""
    await asyncio.sleep(3)
    c0, s0, t0 = etcd_counters(url), pool.poll(), time.perf_counter()
    await asyncio.sleep(window)
    c1, s1, t1 = etcd_counters(url), pool.poll(), time.perf_counter()
    span = t1 - t0
    return {
        "etcd_requests_per_s_steady": round((c1["msg_received"] - c0["msg_received"]) / span),
        "etcd_unary_and_streams_per_s_steady": round((c1["handled"] - c0["handled"]) / span),
        "etcd_requests_steady_by_method": counter_diff(c0, c1),
        "agent_cpu_percent_steady": round(100 * (s1["cpu_s"] - s0["cpu_s"]) / span, 1),
    }


async def probes(pool: Workers, cli: Cli, count: int) -> dict[str, Any]:
    """One more unit at a time through ``unitctl start --no-block`` (CLI start-up
    included) -> reported active; and the agents woken per change."""
    lat, wakes = [], []
    for i in range(count):
        before = pool.poll()
        t = time.perf_counter()
        await cli("start", "--no-block", f"probe-{i}.service")
        await pool.wait("active", before["active"] + 1, 60)
        lat.append(time.perf_counter() - t)
        await asyncio.sleep(0.3)
        wakes.append(pool.poll()["wakes"] - before["wakes"])
    return {"single_start": stats_ms(lat), "wakes_per_change": wakes,
            "wakes_per_change_median": statistics.median(wakes)}


async def run(agents: int, units: int, workers: int, window: float, probe_count: int,
              url: str, work: str, etcd_pid: int, shared_engine: bool = True,
              rollout_count: int = 3, gc_freeze: bool = True) -> dict[str, Any]:
    from unitctl.registry.etcd import EtcdConfig, EtcdKV
    from unitctl.registry.registry import Registry

    kv = await EtcdKV.connect(EtcdConfig(endpoints=(url,), timeout=30.0))
    reg = Registry(kv, PREFIX)
    await reg.ensure_schema()
    t_boot = time.perf_counter()
    pool = Workers(workers, agents, url, shared_engine)
    cli = Cli(url, work)
    try:
        await pool.wait("ready", agents, 600)
        while len(await reg.list_machines()) < agents:  # every agent registered
            await asyncio.sleep(0.2)
        watchers = await watches_settled(url)
        boot_s = time.perf_counter() - t_boot
        if gc_freeze:
            pool.freeze()
        await asyncio.sleep(2)
        out: dict[str, Any] = {"agents": agents, "workers": workers, "units": units,
                               "engine": ("in worker 0, beside its agents" if shared_engine
                                          else f"{ENGINES} engine agents in a process of "
                                               f"their own (as in production)"),
                               "boot_s": round(boot_s, 1), "etcd_watchers": watchers,
                               "gc_freeze": FROZEN if gc_freeze else "no"}
        out.update(await rollouts(pool, cli, url, units, etcd_pid, rollout_count))
        out.update(await steady(pool, url, window))
        out.update(await probes(pool, cli, probe_count))
        out["floor_batched_puts"] = await put_floor(url, units)
        out["ratio_to_floor"] = round(out["floor_batched_puts"]["units_per_s"]
                                      / out["rollout"]["placements_per_s"], 2)
        return out
    finally:
        pool.stop()
        await kv.close()


#: What ``gc_freeze`` does, as recorded in the results.
FROZEN = ("after boot, once: every worker runs gc.collect() and gc.freeze() when all its "
          "agents have registered, as the agent daemon does once it is ready "
          "(unitctl/daemon.py, freeze_startup_heap)")


def _pid(proc: Any) -> int:
    assert proc is not None, "etcd is not running"
    return int(proc.pid)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--units", type=int, default=10000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--engine-process", action="store_true",
                   help="run the engine's agents in a process of their own (as in "
                        "production), not in worker 0's event loop beside 250 others")
    p.add_argument("--no-gc-freeze", action="store_true",
                   help="leave the workers' start-up heap to the cyclic collector "
                        "(the runs before 2026-12-07)")
    p.add_argument("--window", type=float, default=10.0, help="steady-state window (s)")
    p.add_argument("--probes", type=int, default=20)
    p.add_argument("--rollouts", type=int, default=3,
                   help="rollouts of the same units (destroyed in between); the median "
                        "one is reported as 'rollout', every one under 'rollouts'")
    args = p.parse_args(argv)
    work = tempfile.mkdtemp(prefix="unitctl-bench-e2e-")
    Path(work, "svc@.service").write_text(TEMPLATE)
    for i in range(args.probes):
        Path(work, f"probe-{i}.service").write_text(TEMPLATE.replace("%i", str(i)))
    try:
        with etcd_cluster(1) as etcd:
            result = asyncio.run(run(args.agents, args.units, args.workers, args.window,
                                     args.probes, etcd.endpoints[0], work,
                                     _pid(etcd.members[0].proc),
                                     not args.engine_process, args.rollouts,
                                     not args.no_gc_freeze))
    finally:
        shutil.rmtree(work, ignore_errors=True)  # a plain temp dir: no mounts
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
