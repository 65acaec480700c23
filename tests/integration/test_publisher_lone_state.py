"""The state publisher writes a lone settled state at once, and gathers the rest
(issue 12, item 2), over a real etcd (and the in-memory store).

A started unit's ``active``, reported alone after a quiet spell, goes into
etcd without the 5 ms wait for a burst; a transitional state (``activating``)
or several reports wait for the rest of their burst, in one transaction. The
waits are recorded through :meth:`StatePublisher._gather`, its one wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import KVFactory
from unitctl.agent.fake import FakeUnitManager
from unitctl.agent.ports import SystemdState
from unitctl.agent.publisher import GATHER, TRANSITIONAL, StatePublisher, gathers
from unitctl.model import UnitState
from unitctl.registry.registry import Registry
from unitctl.registry.services import ServiceChanges
from unitctl_testing.inprocess import eventually

MID = "d" * 32
TEXT = "[Service]\nExecStart=/bin/sleep infinity\n"


class RecordingPublisher(StatePublisher):
    """The real publisher; counts its waits for a burst."""

    gathered = 0

    async def _gather(self) -> None:
        self.gathered += 1
        await super()._gather()


async def _active(reg: Registry, name: str, active: str) -> bool:
    states = [s for s in await reg.list_states() if s.name == name]
    return bool(states) and states[0].active == active


def test_a_lone_active_state_is_written_without_waiting(make_kv: KVFactory,
                                                        key_prefix: str) -> None:
    async def scenario() -> None:
        reg = Registry(await make_kv(), key_prefix)
        units = FakeUnitManager()
        await units.write("a.service", TEXT)
        await units.write("b.service", TEXT)
        lease = await reg.leases.grant(30)
        publisher = RecordingPublisher(reg, units, MID, lambda: lease)
        task = asyncio.create_task(publisher.run())
        try:
            await asyncio.sleep(0.05)  # quiet: nothing written for a while
            publisher.report("a.service", SystemdState("loaded", "active", "running"))
            await eventually(lambda: _active(reg, "a.service", "active"))
            assert publisher.gathered == 0
            await asyncio.sleep(0.05)
            publisher.report("b.service", SystemdState("loaded", "activating", "start"))
            await eventually(lambda: _active(reg, "b.service", "activating"))
            assert publisher.gathered == 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await reg.close()
    asyncio.run(asyncio.wait_for(scenario(), 60))


_STATE = st.builds(lambda a: UnitState("u.service", MID, "loaded", a, "x", "h"),
                   st.sampled_from(["active", "failed", "inactive", *sorted(TRANSITIONAL)]))


@given(pending=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.none() | _STATE),
       quiet=st.floats(0, 1))
def test_only_one_settled_report_after_a_quiet_spell_goes_at_once(
        pending: dict[str, UnitState | None], quiet: float) -> None:
    lone = (quiet >= GATHER and len(pending) == 1
            and all(s is None or s.active not in TRANSITIONAL for s in pending.values()))
    assert gathers(pending, quiet) is not lone


class ReportingDuringWrite(Registry):
    """The real registry; the first state write brings one more report meanwhile
    (a start's ``active`` signalled while its ``inactive`` is being written)."""

    publisher: StatePublisher | None = None

    async def publish_states(self, machine_id: str, states: Mapping[str, UnitState | None],
                             lease: int, services: ServiceChanges | None = None) -> None:
        if self.publisher is not None:
            self.publisher.report("a.service", SystemdState("loaded", "active", "running"))
            self.publisher = None
        await super().publish_states(machine_id, states, lease, services)


class CountingRetries(RecordingPublisher):
    retries = 0

    async def _retry_wait(self) -> None:
        self.retries += 1
        await super()._retry_wait()


def test_a_report_during_a_successful_write_is_not_held_for_the_retry_wait(
        make_kv: KVFactory, key_prefix: str) -> None:
    async def scenario() -> None:
        reg = ReportingDuringWrite(await make_kv(), key_prefix)
        units = FakeUnitManager()
        await units.write("a.service", TEXT)
        lease = await reg.leases.grant(30)
        publisher = CountingRetries(reg, units, MID, lambda: lease)
        reg.publisher = publisher
        task = asyncio.create_task(publisher.run())
        try:
            publisher.report("a.service", SystemdState("loaded", "inactive", "dead"))
            await eventually(lambda: _active(reg, "a.service", "active"))
            assert publisher.retries == 0
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await reg.close()
    asyncio.run(asyncio.wait_for(scenario(), 60))
