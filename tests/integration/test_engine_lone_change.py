"""The engine runs a round at once for a lone change, and gathers a burst (issue 12, item 2).

The leading engine over a real etcd (and the in-memory store): after it has
been idle, one new unit is placed by a round that did not wait for more
changes to gather; changes that come while rounds keep running are gathered
for ``debounce`` (the bulk paths rely on that). The waits are recorded through
:meth:`Engine._gather`, the one place the engine waits before a round (its rules:
:mod:`unitctl.engine.gather`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import KVFactory
from unitctl.engine.engine import Engine, RoundResult
from unitctl.engine.gather import GATHER_MAX, GATHER_QUIET, gather_left, gathering
from unitctl.model import DesiredState, Machine, UnitRecord
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile
from unitctl_testing.inprocess import eventually

PLAIN = "[Service]\nExecStart=/bin/sleep infinity\n"
MID = "e" * 32
#: long enough to tell a gathered round from one at once, never a speed bound
DEBOUNCE = 0.25


class RecordingEngine(Engine):
    """The real engine; records every wait before a round, and counts rounds."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry, MID, debounce=DEBOUNCE, on_round=self._counted)
        self.gathered: list[float] = []
        self.rounds = 0

    def _counted(self, _result: RoundResult) -> None:
        self.rounds += 1

    async def _gather(self, seconds: float,
                      changed_at: Callable[[], float] = lambda: math.inf) -> None:
        self.gathered.append(seconds)
        await super()._gather(seconds, changed_at)


async def _submit(reg: Registry, name: str,
                  desired: DesiredState = DesiredState.LAUNCHED) -> None:
    uf = UnitFile.parse(PLAIN)
    await reg.create_unit(UnitRecord(name, uf.hash(), desired), uf.serialize())


def test_a_lone_change_is_placed_without_gathering(make_kv: KVFactory,
                                                   key_prefix: str) -> None:
    async def scenario() -> None:
        reg = Registry(await make_kv(), key_prefix)
        lease = await reg.leases.grant(30)
        await reg.register_machine(Machine(MID, "10.0.0.1"), lease)
        engine = RecordingEngine(reg)
        task = asyncio.create_task(engine.run(lease))
        try:
            await _submit(reg, "first.service")
            await eventually(lambda: _placed(reg, "first.service"), timeout=10)
            # idle for longer than any gathering time: the next change is a lone one
            await asyncio.sleep(1.2)
            engine.gathered.clear()
            await _submit(reg, "lone.service")
            await eventually(lambda: _placed(reg, "lone.service"), timeout=10)
            assert DEBOUNCE not in engine.gathered, engine.gathered
            # as `unitctl start` does: create the unit inactive, then set it launched at
            # once: the create's round writes nothing, so the start is not held back
            await asyncio.sleep(1.2)
            engine.gathered.clear()
            rounds = engine.rounds
            await _submit(reg, "started.service", DesiredState.INACTIVE)
            await eventually(lambda: engine.rounds > rounds, timeout=10)
            await reg.set_desired("started.service", DesiredState.LAUNCHED)
            await eventually(lambda: _placed(reg, "started.service"), timeout=10)
            assert DEBOUNCE not in engine.gathered, engine.gathered
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await reg.close()
    asyncio.run(asyncio.wait_for(scenario(), 60))


async def _placed(reg: Registry, name: str) -> bool:
    return name in await reg.list_placements()


@given(quiet=st.floats(0, 5), debounce=st.floats(0, 2), last=st.floats(0, 5),
       committed=st.booleans())
def test_gathering_waits_only_after_a_recent_round_that_wrote(
        quiet: float, debounce: float, last: float, committed: bool) -> None:
    """A change after a quiet spell of the gathering time runs at once, and so does
    one after a round that wrote nothing (once that round's length passed); else it
    waits the debounce (or the last round's length), never more than a second.
    ``quiet`` 0: the change came while the round ran (a burst)."""
    wait = gathering(quiet, debounce, last, committed)
    full = min(max(debounce, last), 1.0)
    at_once = quiet >= full or (not committed and quiet > 0)
    assert wait == (0.0 if at_once else full)
    assert 0.0 <= wait <= 1.0


@given(now=st.floats(0, 100), started=st.floats(0, 100), wait=st.floats(0, 2),
       changed_at=st.floats(0, 100))
def test_gathering_ends_when_the_burst_is_over(now: float, started: float, wait: float,
                                               changed_at: float) -> None:
    """The wait before a round ends once the last change is GATHER_QUIET old; else at
    its deadline, or, while changes came during it, at most at GATHER_MAX."""
    deadline, cap = started + wait, started + max(wait, GATHER_MAX)
    left = gather_left(now, deadline, changed_at, started, cap)
    assert left >= 0.0
    end = cap if changed_at > started else deadline
    if now - changed_at >= GATHER_QUIET or now >= end:
        assert left == 0.0
    else:
        assert left in (end - now, GATHER_QUIET - (now - changed_at))
        assert 0.0 < left <= end - now
    if changed_at <= started:  # no change during the wait: never past its deadline
        assert now + left <= max(deadline, now)
    assert now + left <= max(cap, now)  # never past GATHER_MAX
