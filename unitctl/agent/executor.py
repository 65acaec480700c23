"""The executor: runs a task list of :func:`~unitctl.agent.reconcile.compute_tasks`
against the :class:`~unitctl.agent.ports.UnitManager` port.

It also keeps the one piece of state the decision reads besides the files:
``started``, the (name, hash) pairs this agent process started or adopted
(:attr:`~unitctl.agent.reconcile.CurrentUnit.started`). A start records its
pair; a stop or an unload forgets every pair of that name.

Contract: tasks run in order and the first failure ends the run (the caller
retries with a fresh decision); the executor itself never schedules anything,
so it runs the same in the agent and, driven step by step, in the
deterministic simulator (:mod:`unitctl.sim`). State changes it causes besides
systemd's own signals (a unit's state after a daemon-reload, an unloaded
unit's state removed) go to a :class:`StateSink`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from unitctl.errors import UnitctlError
from unitctl.unitfile import UnitFile

from .ports import SystemdState, UnitManager
from .reconcile import CurrentUnit, DesiredUnit
from .tasks import Task, TaskType

log = logging.getLogger("unitctl.agent")

#: systemd ActiveStates of a unit that runs (adopted after a restart).
ACTIVE_STATES = ("active", "activating", "reloading", "deactivating")


class StateSink(Protocol):
    """Where the executor reports unit states (the agent's publisher)."""

    def report(self, name: str, state: SystemdState) -> None:
        """``name`` is now in ``state``."""
        ...

    def drop(self, name: str) -> None:
        """``name`` was unloaded: its state goes away."""
        ...


class NoSink:
    """A :class:`StateSink` that reports nowhere (the simulator)."""

    def report(self, name: str, state: SystemdState) -> None:
        pass

    def drop(self, name: str) -> None:
        pass


class Executor:
    """Runs tasks against one UnitManager and remembers what it started."""

    def __init__(self, units: UnitManager, sink: StateSink | None = None) -> None:
        self.units = units
        self.sink: StateSink = sink or NoSink()
        #: (name, hash) of every unit this process started or adopted.
        self.started: set[tuple[str, str]] = set()

    def current(self) -> dict[str, CurrentUnit]:
        """The units present in the directory, marked when this process started them."""
        return {n: CurrentUnit(n, h, (n, h) in self.started)
                for n, h in self.units.present().items()}

    async def adopt(self) -> None:
        """After a restart: units already active are ours and stay running."""
        for name, sha in self.units.present().items():
            st = await self.units.state(name)
            if st.active in ACTIVE_STATES:
                self.started.add((name, sha))
                log.info("agent: adopted running unit %s", name)

    def forget_all(self) -> None:
        """Forget every start (after a fence: every unit is to be started again)."""
        self.started.clear()

    async def run(self, tasks: list[Task], desired: Mapping[str, DesiredUnit],
                  bodies: Mapping[str, str]) -> UnitctlError | None:
        """Run ``tasks`` in order; return the error that stopped the run, or None.

        ``bodies`` maps a unit hash to its text (for LOAD).
        """
        for task in tasks:
            try:
                await self.do(task, desired, bodies)
            except UnitctlError as exc:
                log.error("agent: %s %s failed: %s", task.type.value, task.name, exc)
                return exc
            log.info("agent: %s %s: %s", task.type.value, task.name or "-", task.reason)
        return None

    async def do(self, task: Task, desired: Mapping[str, DesiredUnit],
                 bodies: Mapping[str, str]) -> None:
        """Run one task."""
        name = task.name
        if task.type is TaskType.UNLOAD:
            self._forget(name)
            await self.units.unload(name)
            self.sink.drop(name)
        elif task.type is TaskType.LOAD:
            text = bodies[desired[name].hash]
            await self.units.write(name, text)
            await self.units.link(name, UnitFile.parse(text).has_section("Install"))
        elif task.type is TaskType.RELOAD:
            await self.units.reload()
            for loaded in desired:
                self.sink.report(loaded, await self.units.state(loaded))
        elif task.type is TaskType.STOP:
            self._forget(name)
            await self.units.stop(name)
        else:
            await self.units.start(name)
            self.started.add((name, desired[name].hash))

    def _forget(self, name: str) -> None:
        self.started = {s for s in self.started if s[0] != name}
