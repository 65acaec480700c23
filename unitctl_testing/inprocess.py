"""An in-process cluster: the real Agent, Engine and Registry of several machines
in one event loop, over any KV (MemoryKV or a real etcd), with FakeUnitManager
standing in for systemd.

Unlike :mod:`unitctl.sim` (a pure model of the cluster that explores fault
schedules), nothing here is modelled: every machine runs the production
agent code, each with its own KV connection, as a real agent would. Used by
the engine and CLI integration tests and by the benchmarks.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from unitctl.agent.agent import Agent, AgentOptions
from unitctl.agent.fake import FakeUnitManager
from unitctl.daemon import engine_factory
from unitctl.model import Machine
from unitctl.registry.kv import KV
from unitctl.registry.registry import Registry

KVFactory = Callable[[], Awaitable[KV]]


@dataclass
class InProcessMachine:
    machine: Machine
    agent: Agent
    units: FakeUnitManager
    registry: Registry
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class InProcessCluster:
    """N machines' agents in this process; each has its own KV connection, like a real agent."""

    def __init__(self, make_kv: KVFactory, prefix: str, ttl: int = 2,
                 engine: bool = True, state_dir: str = "") -> None:
        self.make_kv = make_kv
        self.prefix = prefix
        self.ttl = ttl
        self.engine = engine
        self.machines: dict[str, InProcessMachine] = {}
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="unitctl-sim-")

    async def add(self, index: int, metadata: dict[str, str] | None = None,
                  engine: bool | None = None) -> InProcessMachine:
        mid = f"{index:08x}" + "0" * 24
        kv = await self.make_kv()
        registry = Registry(kv, self.prefix)
        await registry.ensure_schema()
        units = FakeUnitManager(keep_history=False)
        machine = Machine(mid, f"10.0.0.{index}", metadata or {}, "sim")
        opts = AgentOptions(ttl=self.ttl, peer_port=0,
                            engine=self.engine if engine is None else engine,
                            engine_resync=30.0,
                            lease_file=os.path.join(self.state_dir, f"{mid}.lease"))
        agent = Agent(registry, units, machine, opts, engine=engine_factory(registry, mid, opts))
        sm = InProcessMachine(machine, agent, units, registry)
        sm.task = asyncio.create_task(sm.agent.run(sm.stop))
        self.machines[mid] = sm
        await asyncio.wait_for(sm.agent.ready.wait(), 10)
        return sm

    async def kill(self, mid: str) -> None:
        """Hard kill: the agent vanishes without a word; its lease runs out."""
        sm = self.machines.pop(mid)
        tasks = [t for t in (sm.task, sm.agent.engines.task) if t is not None]
        for _ in range(50):  # a task that swallowed one cancellation gets another
            for t in tasks:
                t.cancel()
            done, _pending = await asyncio.wait(tasks, timeout=0.1)
            if len(done) == len(tasks):
                break
        else:
            stuck = [t for t in tasks if not t.done()]
            where = "\n".join(f"{t.get_name()}: {t.get_stack(limit=8)}" for t in stuck)
            raise RuntimeError(f"agent {mid[:8]} does not stop when cancelled:\n{where}")
        await sm.registry.close()

    async def stop(self, mid: str) -> None:
        """Graceful stop (SIGTERM): units unloaded, lease revoked."""
        sm = self.machines.pop(mid)
        sm.stop.set()
        assert sm.task is not None
        await asyncio.wait_for(sm.task, 10)
        await sm.registry.close()

    async def close(self) -> None:
        for mid in list(self.machines):
            await self.kill(mid)

    def running(self) -> dict[str, set[str]]:
        """unit -> machines where the fake systemd has it active."""
        out: dict[str, set[str]] = {}
        for mid, sm in self.machines.items():
            for name, st in sm.units.units.items():
                if st.active == "active" and name in sm.units.files:
                    out.setdefault(name, set()).add(mid)
        return out

    def leader(self) -> str | None:
        for mid, sm in self.machines.items():
            eng = sm.agent.engine
            if eng is not None and getattr(eng, "leading", False):
                return mid
        return None


async def eventually(check: Callable[[], Awaitable[object]] | Callable[[], object],
                     timeout: float = 10.0, step: float = 0.02) -> float:
    """Wait until ``check()`` is true; return the seconds it took (fails on timeout)."""
    t0 = time.monotonic()
    while True:
        res = check()
        ok = await res if asyncio.iscoroutine(res) else res
        if ok:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)
