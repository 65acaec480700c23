"""The agent's decision as a table, in the style of fleet's agent/reconcile_test.go:
(desired state, current state) -> the exact task list, in execution order.

Plus the two pieces around it: ``accept`` (the agent-side refusals, global units
among them) and the executor running the tasks (a unit with an [Install]
section is enabled when linked; ``started`` follows start, stop and unload).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unitctl.agent.executor import Executor
from unitctl.agent.fake import FakeUnitManager
from unitctl.agent.portenv import PortDropins
from unitctl.agent.reconcile import CurrentUnit, DesiredUnit, accept, compute_tasks
from unitctl.agent.tasks import Task, TaskReason, TaskType
from unitctl.model import DesiredState, Machine, Requirements
from unitctl.ports import DROPIN_NAME, dropin_ports, dropin_text
from unitctl.unitfile import UnitFile

LAUNCHED, LOADED, INACTIVE = DesiredState.LAUNCHED, DesiredState.LOADED, DesiredState.INACTIVE
UNLOAD, LOAD, RELOAD = TaskType.UNLOAD, TaskType.LOAD, TaskType.RELOAD
STOP, START = TaskType.STOP, TaskType.START
R = TaskReason


def want(name: str, sha: str, state: DesiredState, req: Requirements | None = None
         ) -> DesiredUnit:
    return DesiredUnit(name, sha, state, req or Requirements())


def have(name: str, sha: str, started: bool = False) -> CurrentUnit:
    return CurrentUnit(name, sha, started)


def task(kind: TaskType, name: str, reason: TaskReason) -> Task:
    return Task(kind, name, reason.value)


RELOADED = task(RELOAD, "", R.FILES_CHANGED)
GLOBAL = Requirements(is_global=True)

CASES = [
    pytest.param([], [], [], id="nothing desired, nothing present: nothing to do"),
    pytest.param([want("a.service", "h1", LOADED)], [have("a.service", "h1")], [],
                 id="loaded and wanted loaded: nothing to do"),
    pytest.param([want("a.service", "h1", LAUNCHED)], [have("a.service", "h1", started=True)],
                 [], id="started and wanted launched: nothing to do"),
    pytest.param([want("a.service", "h1", INACTIVE)], [], [],
                 id="inactive and absent: nothing to do"),
    pytest.param([want("a.service", "h1", LOADED)], [],
                 [task(LOAD, "a.service", R.NOT_LOADED), RELOADED],
                 id="load a new unit"),
    pytest.param([want("a.service", "h1", LAUNCHED)], [],
                 [task(LOAD, "a.service", R.NOT_LOADED), RELOADED,
                  task(START, "a.service", R.WANT_LAUNCHED)],
                 id="load and start a new unit"),
    pytest.param([want("a.service", "h1", LAUNCHED)], [have("a.service", "h1")],
                 [task(START, "a.service", R.WANT_LAUNCHED)],
                 id="start a loaded unit (no reload: no file changed)"),
    pytest.param([want("a.service", "h1", LOADED)], [have("a.service", "h1", started=True)],
                 [task(STOP, "a.service", R.WANT_LOADED)],
                 id="stop a started unit wanted loaded"),
    pytest.param([], [have("a.service", "h1", started=True)],
                 [task(UNLOAD, "a.service", R.NOT_SCHEDULED), RELOADED],
                 id="unload a unit no longer scheduled"),
    pytest.param([want("a.service", "h1", INACTIVE)], [have("a.service", "h1")],
                 [task(UNLOAD, "a.service", R.NOT_SCHEDULED), RELOADED],
                 id="unload a unit wanted inactive"),
    pytest.param([want("a.service", "h2", LOADED)], [have("a.service", "h1")],
                 [task(UNLOAD, "a.service", R.HASH_DIFFERS),
                  task(LOAD, "a.service", R.HASH_DIFFERS), RELOADED],
                 id="hash differs: unload then load"),
    pytest.param([want("a.service", "h2", LAUNCHED)], [have("a.service", "h1", started=True)],
                 [task(UNLOAD, "a.service", R.HASH_DIFFERS),
                  task(LOAD, "a.service", R.HASH_DIFFERS), RELOADED,
                  task(START, "a.service", R.WANT_LAUNCHED)],
                 id="hash differs on a started unit: the new version is started again"),
    pytest.param([DesiredUnit("a.service", "h1", LAUNCHED, Requirements(),
                              ports=(("PORT", 31001),))],
                 [CurrentUnit("a.service", "h1", True, (("PORT", 31000),))],
                 [task(UNLOAD, "a.service", R.PORTS_DIFFER),
                  task(LOAD, "a.service", R.PORTS_DIFFER), RELOADED,
                  task(START, "a.service", R.WANT_LAUNCHED)],
                 id="stale ports drop-in (a fence, new ports): loaded again and restarted"),
    pytest.param([DesiredUnit("a.service", "h1", LAUNCHED, Requirements(),
                              ports=(("PORT_B", 2), ("PORT_A", 1)))],
                 [CurrentUnit("a.service", "h1", True, (("PORT_A", 1), ("PORT_B", 2)))], [],
                 id="the same ports in another order: nothing to do"),
    pytest.param([DesiredUnit("a.service", "h1", LAUNCHED, Requirements(),
                              ports=(("PORT", 31001),))],
                 [CurrentUnit("a.service", "h1", True, None)], [],
                 id="ports not tracked (no ports sink): nothing to do"),
    pytest.param([want("a.service", "h2", LOADED)], [have("a.service", "h1", started=True)],
                 [task(UNLOAD, "a.service", R.HASH_DIFFERS),
                  task(LOAD, "a.service", R.HASH_DIFFERS), RELOADED],
                 id="hash differs, wanted loaded: the unload stops it, no STOP task"),
    pytest.param([want("g.service", "h1", LAUNCHED, GLOBAL)], [],
                 [task(LOAD, "g.service", R.NOT_LOADED), RELOADED,
                  task(START, "g.service", R.WANT_LAUNCHED)],
                 id="a global unit accepted here is loaded and started like any other"),
    pytest.param([], [have("g.service", "h1", started=True)],
                 [task(UNLOAD, "g.service", R.NOT_SCHEDULED), RELOADED],
                 id="a global unit refused here (absent from desired) is unloaded"),
    pytest.param(
        [want("a.service", "h1", LAUNCHED), want("c.service", "h3", LOADED),
         want("d.service", "h4", LAUNCHED), want("e.service", "h5", LOADED)],
        [have("b.service", "h2"), have("c.service", "h3", started=True),
         have("d.service", "h4"), have("e.service", "h0")],
        [task(UNLOAD, "b.service", R.NOT_SCHEDULED), task(UNLOAD, "e.service", R.HASH_DIFFERS),
         task(LOAD, "a.service", R.NOT_LOADED), task(LOAD, "e.service", R.HASH_DIFFERS),
         RELOADED, task(STOP, "c.service", R.WANT_LOADED),
         task(START, "a.service", R.WANT_LAUNCHED), task(START, "d.service", R.WANT_LAUNCHED)],
        id="many units: unload, load, one reload, stop, start; by name within a kind"),
]


@pytest.mark.parametrize("desired,current,expected", CASES)
def test_compute_tasks(desired: list[DesiredUnit], current: list[CurrentUnit],
                       expected: list[Task]) -> None:
    got = compute_tasks({d.name: d for d in desired}, {c.name: c for c in current})
    assert got == expected


def test_every_task_type_and_reason_is_covered() -> None:
    seen = {t for case in CASES for t in cast(list[Task], case.values[2])}
    assert {t.type for t in seen} == set(TaskType)
    assert {t.reason for t in seen} == {r.value for r in TaskReason}


MACHINE = Machine("a" * 32, "10.0.0.1", {"region": "eu"})


@pytest.mark.parametrize("desired,refused", [
    pytest.param([want("g.service", "h", LAUNCHED, GLOBAL)], {}, id="global without metadata"),
    pytest.param([want("g.service", "h", LAUNCHED, Requirements(
        is_global=True, metadata={"region": frozenset({"eu", "us"})}))], {},
        id="global whose metadata this machine has"),
    pytest.param([want("g.service", "h", LAUNCHED, Requirements(
        is_global=True, metadata={"region": frozenset({"us"})}))],
        {"g.service": "lacks metadata region=us"}, id="global whose metadata this machine lacks"),
    pytest.param([want("a.service", "h", LAUNCHED, Requirements(
        metadata={"region": frozenset({"us"})}))], {},
        id="a non-global unit's metadata is the scheduler's business"),
    pytest.param([want("a.service", "h", LAUNCHED, Requirements(conflicts=("b.service",))),
                  want("b.service", "h", LAUNCHED)],
                 {"b.service": "conflicts with a.service"},
                 id="a conflict: the first by name is accepted"),
])
def test_accept(desired: list[DesiredUnit], refused: dict[str, str]) -> None:
    assert accept(MACHINE, {d.name: d for d in desired}) == refused


PLAIN = "[Service]\nExecStart=/bin/true\n"
INSTALL = PLAIN + "[Install]\nWantedBy=multi-user.target\n"
HA, HB = UnitFile.parse(PLAIN).hash(), UnitFile.parse(INSTALL).hash()


def test_executor_enables_units_with_install_and_tracks_started() -> None:
    async def go() -> None:
        units = FakeUnitManager()
        await units.start_manager(lambda _n, _s: None)
        executor = Executor(units)
        desired = {"a.service": want("a.service", HA, LAUNCHED),
                   "b.service": want("b.service", HB, LAUNCHED)}
        bodies = {HA: PLAIN, HB: INSTALL}
        tasks = compute_tasks(desired, executor.current())
        assert await executor.run(tasks, desired, bodies) is None
        assert units.linked == {"a.service", "b.service"} and units.enabled == {"b.service"}
        assert executor.started == {("a.service", HA), ("b.service", HB)}
        assert compute_tasks(desired, executor.current()) == []
        stop_a = {**desired, "a.service": want("a.service", HA, LOADED)}
        assert await executor.run(compute_tasks(stop_a, executor.current()), stop_a,
                                  bodies) is None
        assert executor.started == {("b.service", HB)}
        assert await executor.run(compute_tasks({}, executor.current()), {}, bodies) is None
        assert executor.started == set() and dict(units.present()) == {}
    asyncio.run(go())


def test_executor_restarts_a_unit_whose_ports_drop_in_is_stale(tmp_path: Path) -> None:
    """After a fence the engine may place a unit back with new ports while its file
    (same hash) is still here: the agent writes the new drop-in and starts it again,
    instead of starting it on ports given to another unit meanwhile."""
    async def go() -> None:
        units = FakeUnitManager()
        await units.start_manager(lambda _n, _s: None)
        executor = Executor(units)
        executor.port_dropins = dropins = PortDropins(str(tmp_path))
        first = {"a.service": DesiredUnit("a.service", HA, LAUNCHED, Requirements(),
                                          ports=(("PORT", 31000),))}
        assert await executor.run(compute_tasks(first, executor.current()), first,
                                  {HA: PLAIN}) is None
        assert dropins.read("a.service") == (("PORT", 31000),)
        executor.forget_all()  # a fence stopped it
        again = {"a.service": DesiredUnit("a.service", HA, LAUNCHED, Requirements(),
                                          ports=(("PORT", 31007),))}
        tasks = compute_tasks(again, executor.current())
        assert [t.type for t in tasks] == [UNLOAD, LOAD, RELOAD, START]
        assert await executor.run(tasks, again, {HA: PLAIN}) is None
        assert dropins.read("a.service") == (("PORT", 31007),)
        assert "Environment=PORT=31007" in (tmp_path / "a.service.d" / DROPIN_NAME).read_text()
        assert compute_tasks(again, executor.current()) == []
    asyncio.run(go())


@given(st.dictionaries(st.from_regex(r"PORT(_[A-Z]{1,5})?", fullmatch=True),
                       st.integers(1, 65535), max_size=4))
def test_the_ports_drop_in_reads_back_what_was_written(ports: dict[str, int]) -> None:
    assert dropin_ports(dropin_text(ports.items())) == tuple(sorted(ports.items()))
