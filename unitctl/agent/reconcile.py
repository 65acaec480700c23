"""The agent's decision: desired vs current → ordered tasks (pure, no I/O).

Desired comes from this machine's schedule in the registry; current from the
files in the agent's own directory plus what this agent process has started.
Units outside the directory are never considered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from unitctl.dependencies import NO_DEPS, UnitDeps
from unitctl.model import DesiredState, Machine, Requirements
from unitctl.xfleet import conflicts_between

from .tasks import Task, TaskReason, TaskType


@dataclass(frozen=True, slots=True)
class DesiredUnit:
    """A unit scheduled to this machine, with its parsed requirements,
    dependencies (:mod:`unitctl.dependencies`) and allocated host ports."""

    name: str
    hash: str
    desired: DesiredState
    req: Requirements
    deps: UnitDeps = NO_DEPS
    ports: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class CurrentUnit:
    """A unit file present in the directory.

    Attributes:
        hash: hash of the file's normalised text.
        started: this agent process issued a start for this hash, or found the
            unit already active when it started (adoption). Launched units that
            are not marked get a StartUnit, which systemd ignores for a unit that
            is already active (no restart).
        ports: the host ports its drop-in passes in, sorted by name (None: not
            known). Ports that differ from the schedule's are stale (the engine
            gave them to another unit after this one left, say after a fence):
            the unit is loaded again and restarted with its new ports.
    """

    name: str
    hash: str
    started: bool = False
    ports: tuple[tuple[str, int], ...] | None = None


def accept(machine: Machine, desired: Mapping[str, DesiredUnit]) -> dict[str, str]:
    """Agent-side checks, as fleet: return the units this machine refuses, with why.

    Global units whose MachineMetadata this machine lacks are refused, and so
    is any unit that conflicts with one accepted before it (name order).
    """
    refused: dict[str, str] = {}
    accepted: list[DesiredUnit] = []
    for name in sorted(desired):
        unit = desired[name]
        why = _metadata_miss(machine, unit.req) if unit.req.is_global else None
        clash = next((a.name for a in accepted
                      if conflicts_between(a.name, a.req, unit.name, unit.req)), None)
        if why is None and clash is not None:
            why = f"conflicts with {clash}"
        if why is None:
            accepted.append(unit)
        else:
            refused[name] = why
    return refused


#: How a refusal for missing metadata begins.
LACKS_METADATA = "lacks metadata"


def _metadata_miss(machine: Machine, req: Requirements) -> str | None:
    for key, values in sorted(req.metadata.items()):
        if machine.metadata.get(key) not in values:
            return f"{LACKS_METADATA} {key}={'|'.join(sorted(values))}"
    return None


def compute_tasks(desired: Mapping[str, DesiredUnit],
                  current: Mapping[str, CurrentUnit]) -> list[Task]:
    """Return the tasks that turn ``current`` into ``desired``, in execution order."""
    tasks: list[Task] = []
    for name in sorted(set(desired) | set(current)):
        tasks.extend(_unit_tasks(desired.get(name), current.get(name), name))
    if any(t.type in (TaskType.LOAD, TaskType.UNLOAD) for t in tasks):
        tasks.append(Task(TaskType.RELOAD, "", TaskReason.FILES_CHANGED.value))
    return sorted(tasks, key=lambda t: t.sort_key)


def _stale(want: DesiredUnit, have: CurrentUnit | None) -> TaskReason | None:
    """Why the present file (or its ports drop-in) is not the scheduled one, or None."""
    if have is None:
        return None
    if have.hash != want.hash:
        return TaskReason.HASH_DIFFERS
    if have.ports is not None and have.ports != tuple(sorted(want.ports)):
        return TaskReason.PORTS_DIFFER
    return None


def _unit_tasks(want: DesiredUnit | None, have: CurrentUnit | None, name: str) -> list[Task]:
    if want is None or want.desired is DesiredState.INACTIVE:
        return [Task(TaskType.UNLOAD, name, TaskReason.NOT_SCHEDULED.value)] if have else []
    out: list[Task] = []
    stale = _stale(want, have)
    started = bool(have and stale is None and have.started)
    if have is None:
        out.append(Task(TaskType.LOAD, name, TaskReason.NOT_LOADED.value))
    elif stale is not None:
        out += [Task(TaskType.UNLOAD, name, stale.value), Task(TaskType.LOAD, name, stale.value)]
    if want.desired is DesiredState.LAUNCHED and not started:
        out.append(Task(TaskType.START, name, TaskReason.WANT_LAUNCHED.value))
    if want.desired is DesiredState.LOADED and started:
        out.append(Task(TaskType.STOP, name, TaskReason.WANT_LOADED.value))
    return out
