"""The graceful stop's budget logic (issue 10, defect 4), with a fake systemd whose
units take time to stop: units stop in parallel within ``stop_budget``, and the
lease is revoked only when systemd reports every unit down.

The real-systemd version is tests/cluster/test_graceful_stop.py.
"""

from __future__ import annotations

import asyncio

from unitctl.agent.agent import Agent, AgentOptions
from unitctl.agent.fake import FakeUnitManager
from unitctl.agent.ports import SystemdState
from unitctl.agent.stopping import stop_all
from unitctl.model import Machine
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry

DEACTIVATING = SystemdState("loaded", "deactivating", "stop")


class SlowStops(FakeUnitManager):
    """A fake systemd where each stop job takes ``stop_secs`` and cannot be hurried."""

    def __init__(self, stop_secs: float) -> None:
        super().__init__()
        self.stop_secs = stop_secs
        self.done_at: dict[str, float] = {}

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _settle(self, name: str) -> None:
        if name in self.done_at and self._now() >= self.done_at[name] and \
                self.units.get(name) == DEACTIVATING:
            self.set_state(name, SystemdState("loaded", "inactive", "dead"))

    async def stop(self, name: str) -> None:
        self._enter("stop", name)
        if self.units.get(name, DEACTIVATING).active == "active":
            self.done_at.setdefault(name, self._now() + self.stop_secs)
            self.set_state(name, DEACTIVATING)

    async def unload(self, name: str) -> None:
        await self.stop(name)
        if name in self.done_at:
            await asyncio.sleep(max(0.0, self.done_at[name] - self._now()))
            self._settle(name)
        await super().unload(name)

    async def state(self, name: str) -> SystemdState:
        self._settle(name)
        return await super().state(name)


async def running(units: FakeUnitManager, names: list[str]) -> None:
    if not units.started:
        await units.start_manager(lambda _n, _s: None)
    for name in names:
        await units.write(name, "[Service]\nExecStart=/bin/sleep infinity\n")
        await units.link(name, enable=False)
    await units.reload()
    for name in names:
        await units.start(name)


NAMES = [f"slow{i}.service" for i in range(4)]


def test_units_stop_in_parallel_within_the_budget() -> None:
    """4 units of 0.3 s: one by one 1.2 s, past the 0.8 s budget; in parallel 0.3 s."""
    async def go() -> list[str]:
        units = SlowStops(0.3)
        await running(units, NAMES)
        return await stop_all(units, 0.8, asyncio.get_running_loop().time)
    assert asyncio.run(go()) == []


def test_budget_run_out_reports_the_units_still_stopping_with_their_stops_queued() -> None:
    async def go() -> tuple[list[str], SlowStops]:
        units = SlowStops(5.0)
        await running(units, NAMES)
        return await stop_all(units, 0.2, asyncio.get_running_loop().time), units
    left, units = asyncio.run(go())
    assert left == NAMES
    assert all(("stop", n) in units.history for n in NAMES)  # systemd finishes them
    assert all(units.units[n] == DEACTIVATING for n in NAMES)


def test_a_unit_whose_state_cannot_be_read_is_not_down() -> None:
    async def go() -> list[str]:
        units = FakeUnitManager()
        await running(units, ["a.service"])
        units.fail_next("unload", times=100)
        units.fail_next("state", times=100)
        return await stop_all(units, 0.3, asyncio.get_running_loop().time)
    assert asyncio.run(go()) == ["a.service"]


async def _leave(stop_secs: float, budget: float) -> tuple[bool, bool]:
    """Run an agent with 4 units of ``stop_secs``, stop it: (lease alive, files kept)."""
    registry = Registry(MemoryKV(), "/t/")
    await registry.ensure_schema()
    units = SlowStops(stop_secs)
    machine = Machine("a" * 32, "10.0.0.1", {}, "test")
    agent = Agent(registry, units, machine,
                  AgentOptions(ttl=10, peer_port=0, engine=False, stop_budget=budget))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await asyncio.wait_for(agent.ready.wait(), 5)
    await running(units, NAMES)
    lease = agent.lease
    stop.set()
    await asyncio.wait_for(task, budget + 5)
    alive = await registry.leases.refresh(lease) > 0
    return alive, bool(units.files)


def test_lease_revoked_only_when_every_unit_stopped() -> None:
    alive, kept = asyncio.run(_leave(stop_secs=0.3, budget=2.0))
    assert (alive, kept) == (False, False)


def test_budget_run_out_exits_without_revoking_the_lease() -> None:
    alive, _kept = asyncio.run(_leave(stop_secs=5.0, budget=0.3))
    assert alive  # the lease expires on its own, ttl after the last keepalive
