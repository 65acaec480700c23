"""The executor: runs a task list of :func:`~unitctl.agent.reconcile.compute_tasks`
against the :class:`~unitctl.agent.ports.UnitManager` port.

It also keeps the state the decision reads besides the files: ``started``,
the (name, hash) pairs this agent process started or adopted
(:attr:`~unitctl.agent.reconcile.CurrentUnit.started`; a start records its
pair, a stop or an unload forgets every pair of that name), and ``backoff``,
the units whose tasks failed (:mod:`.backoff`).

Contract:

* tasks run in the global order (unload, load, reload, stop, start);
* a daemon-reload that only new names ask for is skipped
  (:meth:`Executor.reload_skippable`): systemd (since 245) loads a unit file
  it has never loaded, or only ever found missing, on the next
  ``LoadUnit``/``StartUnit``/``ListUnitsByNames`` of the name, drop-ins
  included; the reload stays when a file systemd already loaded changed or
  was removed, and is done after all when systemd still reports a new name
  ``not-found`` once its file is linked;
* a failed task holds back only what depends on it: the same unit's later
  tasks (a failed load: no start of that unit), and after a failed
  daemon-reload the units loaded in that run; every other unit's tasks run;
* a unit whose task failed is held back until its retry time (exponential
  backoff, per unit); a failure is forgotten when the unit's task succeeds or
  its schedule entry changes; a failed daemon-reload is repeated on the next run;
* a lost bus (:class:`~unitctl.errors.BusLost`) ends the run: every later call
  would fail the same way;
* before a load, the name is checked against the host's own units
  (:meth:`~unitctl.agent.ports.UnitManager.host_unit`): a host unit is refused
  (:class:`~unitctl.agent.ports.HostUnitError`), never written or linked.

The executor never schedules anything (the caller wakes it for the next retry,
:meth:`Backoff.next_retry`), so it runs the same in the agent and, driven step
by step, in the deterministic simulator (:mod:`unitctl.sim`). State changes it
causes besides systemd's own signals (a unit's state after a daemon-reload, a
failure, an unloaded unit's state removed) go to a :class:`StateSink`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from unitctl.errors import BusLost, UnitctlError
from unitctl.unitfile import UnitFile

from .backoff import Backoff
from .ports import HostUnitError, RefusedBySystemd, SystemdState, UnitManager
from .reconcile import CurrentUnit, DesiredUnit
from .tasks import Task, TaskReason, TaskType

log = logging.getLogger("unitctl.agent")

#: systemd ActiveStates of a unit that runs (adopted after a restart).
ACTIVE_STATES = ("active", "activating", "reloading", "deactivating")

#: The state reported for a unit whose file could not be loaded here.
NOT_LOADED = SystemdState("not-found", "inactive", "dead")

_RELOAD = Task(TaskType.RELOAD, "", TaskReason.FILES_CHANGED.value)


class StateSink(Protocol):
    """Where the executor reports unit states (the agent's publisher)."""

    def report(self, name: str, state: SystemdState) -> None:
        """``name`` is now in ``state``."""
        ...

    def drop(self, name: str) -> None:
        """``name`` was unloaded: its state goes away."""
        ...


class PortsSink(Protocol):
    """Where a unit's allocated host ports go (:class:`~unitctl.agent.portenv.PortDropins`)."""

    def write(self, name: str, ports: tuple[tuple[str, int], ...]) -> None:
        """Pass ``ports`` in to unit ``name`` (none: take them away)."""
        ...

    def read(self, name: str) -> tuple[tuple[str, int], ...]:
        """The ports passed in to unit ``name`` now, sorted by name (none: ``()``)."""
        ...


class VolumesSink(Protocol):
    """Where a unit's local volumes are made and bound in
    (:class:`~unitctl.agent.volumes.LocalVolumes`)."""

    async def prepare(self, name: str, text: str) -> None:
        """Make the volumes unit ``name`` (file ``text``) asks for and bind them in."""
        ...

    def remove(self, name: str) -> None:
        """Take the unit's volumes drop-in away (the volumes themselves stay)."""
        ...


class NoSink:
    """A :class:`StateSink` that reports nowhere (the simulator)."""

    def report(self, name: str, state: SystemdState) -> None:
        pass

    def drop(self, name: str) -> None:
        pass


class Executor:
    """Runs tasks against one UnitManager; remembers what it started and what failed."""

    def __init__(self, units: UnitManager, sink: StateSink | None = None,
                 backoff: Backoff | None = None) -> None:
        self.units = units
        self.sink: StateSink = sink or NoSink()
        #: (name, hash) of every unit this process started or adopted.
        self.started: set[tuple[str, str]] = set()
        #: The units whose tasks failed, and when to retry them.
        self.backoff = backoff or Backoff()
        #: Whether a unit starts without pulling in its Requires= (they run elsewhere).
        self.ignore_requirements: Callable[[str], bool] = lambda _name: False
        self._reload_pending = False
        #: Where a unit's allocated host ports go (None: nowhere, as in the simulator).
        self.port_dropins: PortsSink | None = None
        #: Where a unit's local volumes are made (None: nowhere, as in the simulator).
        self.volumes: VolumesSink | None = None
        #: The names of this run's LOADs when its daemon-reload may be skipped.
        self._fresh: frozenset[str] = frozenset()
        #: The names this run's LOADs found ``not-found`` in systemd just before.
        self._absent: set[str] = set()
        #: The names this run starts (their states come from systemd's signals).
        self._starting: frozenset[str] = frozenset()

    def current(self) -> dict[str, CurrentUnit]:
        """The units present in the directory, marked when this process started them,
        with the ports their drop-ins pass in (None: not tracked, no ports sink)."""
        sink = self.port_dropins
        return {n: CurrentUnit(n, h, (n, h) in self.started,
                               None if sink is None else sink.read(n))
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

    def held(self) -> frozenset[str]:
        """The units held back now (failed, retry time ahead). A run takes this view
        once, so its filtering and its settling agree even when a retry falls due
        while it runs."""
        return frozenset(n for n in self.backoff.names() if self.backoff.holds(n))

    def runnable(self, tasks: list[Task], held: frozenset[str] | None = None) -> list[Task]:
        """``tasks`` without those of units held back; a daemon-reload only when files
        change (or the last one failed)."""
        held = self.held() if held is None else held
        kept = [t for t in tasks if t.type is TaskType.RELOAD or t.name not in held]
        files = self._reload_pending or any(
            t.type in (TaskType.LOAD, TaskType.UNLOAD) for t in kept)
        kept = [t for t in kept if t.type is not TaskType.RELOAD]
        return sorted([*kept, _RELOAD] if files else kept, key=lambda t: t.sort_key)

    async def run(self, tasks: list[Task], desired: Mapping[str, DesiredUnit],
                  bodies: Mapping[str, str]) -> UnitctlError | None:
        """Run what :meth:`runnable` keeps of ``tasks``; return the first error, or None.

        ``bodies`` maps a unit hash to its text (for LOAD). A failure holds back
        the same unit's later tasks only (see the module docs).
        """
        await self._forget_changed(desired)
        held = self.held()
        todo = self.runnable(tasks, held)
        self._absent = set()
        self._fresh = await self.reload_skippable(todo)
        self._starting = frozenset(t.name for t in todo if t.type is TaskType.START)
        loaded = {t.name for t in todo if t.type is TaskType.LOAD}
        blocked: set[str] = set()
        first: UnitctlError | None = None
        for task in todo:
            if task.name in blocked:
                continue
            try:
                await self.do(task, desired, bodies)
            except BusLost as exc:
                log.error("agent: %s %s failed: %s", task.type.value, task.name or "-", exc)
                return exc
            except UnitctlError as exc:
                first = first or exc
                blocked |= self._failed(task, exc, desired, loaded - blocked)
                continue
            log.info("agent: %s %s: %s", task.type.value, task.name or "-", task.reason)
        await self._settle(todo, blocked, held)
        return first

    def _failed(self, task: Task, exc: UnitctlError, desired: Mapping[str, DesiredUnit],
                loaded: set[str]) -> set[str]:
        """Record a failure; return the units it holds back for the rest of the run."""
        names = {task.name}
        if task.type is TaskType.RELOAD:
            self._reload_pending = True
            names = loaded
        error = describe_failure(task, exc)
        for name in sorted(names):
            failure = self.backoff.failed(name, desired.get(name), error)
            log.error("agent: %s %s failed: %s; retry in %s s", task.type.value,
                      name or "-", exc, f"{self.backoff.delay(failure.attempts):g}")
        if not names:
            log.error("agent: %s failed: %s", task.type.value, exc)
        return names

    async def _settle(self, done: list[Task], blocked: set[str], held: frozenset[str]) -> None:
        """After a run: publish each failure, and clear the failures that are over.

        ``held``: the units this run held back; a unit whose retry fell due while
        the run went on keeps its failure (and its attempt count) for the next run.
        """
        ran = {t.name for t in done if t.name}
        for name in self.backoff.names():
            if name in blocked:
                await self._report(name)
            elif name in ran or name not in held:
                # its tasks ran through, or it was due and had nothing left to do
                self.backoff.succeeded(name)
                await self._report(name)

    async def _forget_changed(self, desired: Mapping[str, DesiredUnit]) -> None:
        """A changed schedule entry starts afresh: forget its failure, re-publish."""
        for name in self.backoff.forget_changed(desired):
            await self._report(name)

    async def _report(self, name: str) -> None:
        """Publish the unit's state again (with its failure, if it has one)."""
        if name not in self.units.present():
            if name in self.backoff:
                self.sink.report(name, NOT_LOADED)
            else:
                self.sink.drop(name)  # no file, no failure: nothing to show
            return
        try:
            state = await self.units.state(name)
        except UnitctlError as exc:
            log.warning("agent: cannot read the state of %s: %s", name, exc)
            return
        self.sink.report(name, state)

    async def do(self, task: Task, desired: Mapping[str, DesiredUnit],
                 bodies: Mapping[str, str]) -> None:
        """Run one task."""
        name = task.name
        if task.type is TaskType.UNLOAD:
            self._forget(name)
            await self.units.unload(name)
            self._ports_dropin(name, ())
            if self.volumes is not None:
                self.volumes.remove(name)
            self.sink.drop(name)
        elif task.type is TaskType.LOAD:
            self._ports_dropin(name, desired[name].ports)
            if self.volumes is not None:
                await self.volumes.prepare(name, bodies[desired[name].hash])
            await self._load(name, bodies[desired[name].hash])
        elif task.type is TaskType.RELOAD:
            await self._reload(desired)
        elif task.type is TaskType.STOP:
            self._forget(name)
            await self.units.stop(name)
        else:
            await self.units.start(name, self.ignore_requirements(name))
            self.started.add((name, desired[name].hash))

    async def _reload(self, desired: Mapping[str, DesiredUnit]) -> None:
        """The daemon-reload (skipped when systemd loaded the new names by itself), then
        the states it may have changed: every loaded unit's after a reload, the new
        names' only after a skipped one. A unit this run starts next is reported by
        systemd's signals as it starts (or, when its start fails, with its failure):
        its state is not written twice."""
        fresh, self._fresh = self._fresh, frozenset()
        skipped = await self._loaded_without_reload(fresh)
        if not skipped:
            await self.units.reload()
        self._reload_pending = False
        present = self.units.present()
        for loaded in desired:
            if loaded in present and loaded not in self._starting and (
                    not skipped or loaded in fresh):
                self.sink.report(loaded, await self.units.state(loaded))

    async def reload_skippable(self, todo: list[Task]) -> frozenset[str]:
        """The names of ``todo``'s LOADs when its daemon-reload is there for them alone
        and systemd has loaded none of them (``not-found``); else empty: reload.

        Asked before the LOADs run. A pending (failed) reload, an UNLOAD (a file
        goes) or a LOAD of a name systemd has loaded (its file changes: systemd
        would keep the old text until a reload) keeps the reload.
        """
        if self._reload_pending or not any(t.type is TaskType.RELOAD for t in todo):
            return frozenset()
        if any(t.type is TaskType.UNLOAD for t in todo):
            return frozenset()
        names = frozenset(t.name for t in todo if t.type is TaskType.LOAD)
        for name in sorted(names):
            try:
                if (await self.units.state(name)).load != "not-found":
                    return frozenset()
            except UnitctlError:
                return frozenset()
            self._absent.add(name)
        return names

    async def _loaded_without_reload(self, fresh: frozenset[str]) -> bool:
        """Whether systemd loaded each of ``fresh`` (new names whose files are now
        linked) by itself: asking for their state loads them."""
        if not fresh:
            return False
        for name in sorted(fresh):
            if name in self.units.present() and (
                    await self.units.state(name)).load == "not-found":
                return False
        return True

    async def _load(self, name: str, text: str) -> None:
        """Write and link the unit's file, unless the name is one of the host's units
        (not asked again when systemd just found no file of that name: ``not-found``,
        :meth:`reload_skippable`, the load that would find the host's file)."""
        if name not in self._absent:
            fragment = await self.units.host_unit(name)
            if fragment is not None:
                raise HostUnitError(name, fragment)
        await self.units.write(name, text)
        await self.units.link(name, UnitFile.parse(text).has_section("Install"))

    def _ports_dropin(self, name: str, ports: tuple[tuple[str, int], ...]) -> None:
        """Pass the unit's host ports in (before its load's daemon-reload), or drop them."""
        if self.port_dropins is not None:
            self.port_dropins.write(name, ports)

    def _forget(self, name: str) -> None:
        self.started = {s for s in self.started if s[0] != name}


def describe_failure(task: Task, exc: UnitctlError) -> str:
    """One line for a user: ``start refused by systemd: ...``, ``load refused: ...``."""
    verb = "daemon-reload" if task.type is TaskType.RELOAD else task.type.value
    if isinstance(exc, HostUnitError):
        return f"{verb} refused: {exc}"
    if isinstance(exc, RefusedBySystemd):
        return f"{verb} refused by systemd: {exc.text}"
    return f"{verb} failed: {exc}"
