"""Dependency order in the agent (pure): which of the reconcile's tasks wait, and why.

:func:`gate` filters the task list of :func:`~unitctl.agent.reconcile.compute_tasks`
with the gates of :mod:`unitctl.dependencies`, level-triggered and never
blocking: a START waits while a dependency ordered before it (or, across
machines, named by it) is not running; a STOP or UNLOAD waits while a unit
ordered after it, also leaving this machine, is still up; a running unit whose
Requires=/BindsTo= dependency on another machine is not running gets a STOP
(its desired state stays launched, so it starts again once the dependency runs).

The agent asks again on every change that can open a gate: a state signal of a
unit named in :attr:`Gated.wake_on` (systemd's), or a change of a remote
dependency's keys (etcd's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from unitctl.dependencies import (
    Dependency,
    Placement,
    UnitDeps,
    ordered_before,
    requirement_lost,
    start_wait,
    stop_wait,
)
from unitctl.model import DesiredState, UnitRecord, UnitState

from .reconcile import DesiredUnit
from .tasks import Task, TaskType

__all__ = ["Gated", "gate", "local_dependencies", "remote_dependency"]

_STOPS = (TaskType.STOP, TaskType.UNLOAD)


@dataclass(frozen=True, slots=True)
class Gated:
    """What :func:`gate` kept and held back.

    Attributes:
        tasks: the tasks to run now, in the order they came, plus the STOPs of
            units whose required dependency went.
        waiting: unit -> why it waits (shown with the unit's state).
        wake_on: local units whose next state change may open a gate.
    """

    tasks: list[Task]
    waiting: dict[str, str]
    wake_on: frozenset[str]


def local_dependencies(machine_id: str, desired: Mapping[str, DesiredUnit],
                       active: Mapping[str, str]) -> dict[str, Dependency]:
    """The units scheduled here as dependencies: to run when launched, in the
    state systemd reports here (``active``: name -> ActiveState)."""
    return {name: Dependency(name, unit.desired is DesiredState.LAUNCHED, True,
                             (Placement(machine_id, active.get(name, "inactive")),))
            for name, unit in desired.items()}


def remote_dependency(machine_id: str, record: UnitRecord | None,
                      states: list[UnitState]) -> Dependency | None:
    """A cluster unit scheduled elsewhere, from its unit record and the states other
    machines report (None: not a cluster unit)."""
    if record is None:
        return None
    return Dependency(record.name, record.desired is DesiredState.LAUNCHED, False,
                      tuple(Placement(s.machine_id, s.active, s.sub) for s in states
                            if s.machine_id != machine_id))


def gate(tasks: list[Task], desired: Mapping[str, DesiredUnit],
         deps_of: Mapping[str, UnitDeps], known: Mapping[str, Dependency],
         active: Mapping[str, str], started: frozenset[str]) -> Gated:
    """Filter ``tasks`` by dependency order.

    ``deps_of``: the dependencies of every local unit (scheduled or still
    present); ``known``: local and remote cluster dependencies; ``active``: the
    ActiveState of local units; ``started``: the units this agent started.
    """
    preds = ordered_before(deps_of)
    leaving = {n: st for n, st in active.items()
               if n not in desired or desired[n].desired is not DesiredState.LAUNCHED}
    kept: list[Task] = []
    waiting: dict[str, str] = {}
    wake: set[str] = set()
    for task in tasks:
        why = _why_wait(task, preds, deps_of, known, leaving)
        if why is None:
            kept.append(task)
            continue
        waiting[task.name] = why
        wake |= (preds.get(task.name, frozenset()) if task.type is TaskType.START
                 else {n for n in leaving if task.name in preds.get(n, ())})
    for name in sorted(started):
        unit = desired.get(name)
        if unit is None or unit.desired is not DesiredState.LAUNCHED:
            continue
        lost = requirement_lost(deps_of.get(name, UnitDeps()), known)
        if lost is not None:
            kept.append(Task(TaskType.STOP, name, lost))
            waiting[name] = lost
    return Gated(kept, waiting, frozenset(n for n in wake if n in active or n in desired))


def _why_wait(task: Task, preds: Mapping[str, frozenset[str]],
              deps_of: Mapping[str, UnitDeps], known: Mapping[str, Dependency],
              leaving: Mapping[str, str]) -> str | None:
    if task.type is TaskType.START:
        return start_wait(preds.get(task.name, frozenset()),
                          deps_of.get(task.name, UnitDeps()), known)
    if task.type in _STOPS:
        others = {n: st for n, st in leaving.items() if n != task.name}
        return stop_wait(task.name, preds, others)
    return None
