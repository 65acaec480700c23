"""The executor's daemon-reload skip (issue 12): new names only, verified, else reload.

``LoadsOnDemand`` models systemd >= 245 (a linked file of a name systemd has not
loaded, or found missing, is loaded when the name is next asked for); the plain
:class:`FakeUnitManager` models a systemd that needs the reload, so the
executor's check after the loads must fall back to it. The real-systemd test
is tests/cluster/test_reload_skip.py.
"""

from __future__ import annotations

import asyncio

from unitctl.agent.executor import Executor
from unitctl.agent.fake import LOADED, FakeUnitManager
from unitctl.agent.ports import HostUnitError, SystemdState
from unitctl.agent.reconcile import DesiredUnit, compute_tasks
from unitctl.model import DesiredState, Requirements
from unitctl.unitfile import UnitFile

ONE = "[Service]\nExecStart=/bin/sleep 1\n"
TWO = "[Service]\nExecStart=/bin/sleep 2\n"
H1, H2 = UnitFile.parse(ONE).hash(), UnitFile.parse(TWO).hash()
BODIES = {H1: ONE, H2: TWO}


class LoadsOnDemand(FakeUnitManager):
    """systemd 252: asking for a never-loaded name with a linked file loads it."""

    async def state(self, name: str) -> SystemdState:
        if (name in self.linked and name in self.files
                and self.units.get(name) is None):
            self.units[name] = LOADED
        return await super().state(name)


def _want(**units: str) -> dict[str, DesiredUnit]:
    return {f"{n}.service": DesiredUnit(f"{n}.service", sha, DesiredState.LAUNCHED,
                                        Requirements()) for n, sha in units.items()}


async def _run(units: FakeUnitManager, executor: Executor,
               desired: dict[str, DesiredUnit], ok: bool = True) -> list[str]:
    """Run one reconcile; return the methods called."""
    units.history.clear()
    error = await executor.run(compute_tasks(desired, executor.current()), desired, BODIES)
    assert (error is None) is ok
    return [m for m, _ in units.history]


def test_new_names_start_without_a_reload_and_changes_keep_it() -> None:
    async def go() -> None:
        units = LoadsOnDemand()
        await units.start_manager(lambda _n, _s: None)
        executor = Executor(units)
        assert "reload" not in await _run(units, executor, _want(a=H1, b=H1))
        assert units.units["a.service"].active == "active"
        # a file systemd loaded changes: reload
        assert "reload" in await _run(units, executor, _want(a=H2, b=H1))
        # a file goes: reload (together with a new name, too)
        assert "reload" in await _run(units, executor, _want(a=H2, c=H1))
    asyncio.run(go())


def test_a_systemd_that_does_not_load_on_demand_gets_its_reload() -> None:
    async def go() -> None:
        units = FakeUnitManager()
        await units.start_manager(lambda _n, _s: None)
        executor = Executor(units)
        assert "reload" in await _run(units, executor, _want(a=H1))
        assert units.units["a.service"].active == "active"
    asyncio.run(go())


def test_a_failed_reload_is_never_skipped() -> None:
    async def go() -> None:
        units = LoadsOnDemand()
        await units.start_manager(lambda _n, _s: None)
        executor = Executor(units)
        await _run(units, executor, _want(a=H1))
        units.fail_next("reload")
        await _run(units, executor, _want(a=H2), ok=False)  # changed file: the reload fails
        assert "reload" in await _run(units, executor, _want(a=H2, b=H1))
    asyncio.run(go())


class Reports:
    """A StateSink that keeps every report, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def report(self, name: str, state: SystemdState) -> None:
        self.seen.append((name, state.active))

    def drop(self, name: str) -> None:
        self.seen.append((name, "dropped"))


def test_a_new_unit_that_starts_is_not_reported_inactive_first() -> None:
    """Its state is systemd's to report as it starts: the executor writes no
    "loaded, inactive" state of it just before its StartUnit (a second state write
    on the start path), and after a skipped reload reports no other unit."""
    async def go() -> None:
        units = LoadsOnDemand()
        await units.start_manager(lambda _n, _s: None)
        sink = Reports()
        executor = Executor(units, sink)
        await _run(units, executor, _want(a=H1))
        sink.seen.clear()
        history = await _run(units, executor, _want(a=H1, b=H1))
        assert "reload" not in history and "start" in history
        assert sink.seen == []
    asyncio.run(go())


def test_after_a_real_reload_the_units_not_started_are_reported() -> None:
    """A reload may change any loaded unit's state: those this run does not start
    are reported after it (the started one is left to systemd's signals)."""
    async def go() -> None:
        units = FakeUnitManager()
        await units.start_manager(lambda _n, _s: None)
        sink = Reports()
        executor = Executor(units, sink)
        await _run(units, executor, _want(a=H1))
        sink.seen.clear()
        assert "reload" in await _run(units, executor, _want(a=H1, b=H1))
        assert [n for n, _ in sink.seen] == ["a.service"]
    asyncio.run(go())


def test_the_host_unit_check_is_not_asked_again_for_a_name_systemd_just_found_missing(
        ) -> None:
    """The state read before the loads loads a new name (``not-found``: no file of
    that name anywhere); asking whether the host has it costs three more D-Bus calls
    (LoadUnit, two properties) for the same answer. A host unit is still refused."""
    async def go() -> None:
        units = LoadsOnDemand()
        await units.start_manager(lambda _n, _s: None)
        units.add_foreign_unit("host.service")
        executor = Executor(units)
        history = await _run(units, executor, _want(a=H1))
        assert "host_unit" not in history and "start" in history
        desired = _want(host=H1)
        error = await executor.run(compute_tasks(desired, executor.current()), desired, BODIES)
        assert isinstance(error, HostUnitError)
        assert "host.service" not in units.files
    asyncio.run(go())
