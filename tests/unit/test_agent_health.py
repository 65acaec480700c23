"""The agent's health checks and failure records, in-process (MemoryKV, fake systemd,
fake prober): the health is published with the unit's state, and a unit that
keeps failing is recorded under failures/<unit>/<machine>."""

from __future__ import annotations

import asyncio

from unitctl.agent.agent import Agent, AgentOptions
from unitctl.agent.fake import FakeUnitManager
from unitctl.agent.probes import FakeProber
from unitctl.failover import FailureRecord
from unitctl.model import DesiredState, Machine, ScheduleEntry, UnitRecord
from unitctl.registry import codec
from unitctl.registry.failures import failure_store
from unitctl.registry.kv import Put
from unitctl.registry.memory import MemoryKV
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile

M = "a" * 32
BODY = ("[Unit]\nDescription=web\n[Service]\nExecStart=/bin/sleep 1d\n"
        "[X-Health]\nTCP=127.0.0.1:9\nInterval=50ms\nRetries=2\nOnFailure=none\n"
        "[X-Failover]\nFailures=2\n")


async def _health_states(prober: FakeProber) -> tuple[list[str], dict[str, object]]:
    registry = Registry(MemoryKV(), "/t/")
    await registry.ensure_schema()
    unit = UnitFile.parse(BODY)
    await registry.create_unit(UnitRecord("web.service", unit.hash(), DesiredState.LAUNCHED),
                               unit.serialize())
    entry = ScheduleEntry("web.service", unit.hash(), DesiredState.LAUNCHED)
    await registry.kv.txn([], [Put(registry.keys.scheduled(M, "web.service"),
                                   codec.encode_entry(entry))], [])
    agent = Agent(registry, FakeUnitManager(), Machine(M, "10.0.0.1", {}, "test"),
                  AgentOptions(ttl=10, peer_port=0, engine=False), prober=prober)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    seen: list[str] = []
    failures: dict[str, object] = {}
    for _ in range(200):
        states, _rev = await registry.states_of("web.service")
        for s in states:
            if not seen or seen[-1] != s.health:
                seen.append(s.health)
        failures = dict(await failure_store(registry).failures_of("web.service"))
        if failures or (seen and seen[-1] == "healthy" and prober.results.get("web.service")
                        is None and len(prober.calls) > 3):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    return seen, failures


def test_a_passing_check_is_published_healthy() -> None:
    seen, failures = asyncio.run(_health_states(FakeProber()))
    assert seen[-1] == "healthy" and failures == {}


def test_a_failing_check_is_unhealthy_and_recorded_for_the_engine() -> None:
    prober = FakeProber()
    prober.results["web.service"] = "tcp probe: refused"
    seen, failures = asyncio.run(_health_states(prober))
    assert "unhealthy" in seen and "healthy" not in seen
    record = failures[M]
    assert isinstance(record, FailureRecord) and (record.count, record.why) == (2, "unhealthy")
