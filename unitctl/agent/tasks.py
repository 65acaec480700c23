"""Agent tasks: what to do to one unit, why, and in which order (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TaskType(enum.Enum):
    """Task kinds, in fleet's execution order (see :data:`ORDER`)."""

    UNLOAD = "unload"
    LOAD = "load"
    RELOAD = "reload"
    STOP = "stop"
    START = "start"


#: Unload before load (frees names and conflicts), load every file before one
#: daemon-reload (so dependencies between units resolve, fleet PR #1134), then
#: stop before start.
ORDER = {TaskType.UNLOAD: 0, TaskType.LOAD: 1, TaskType.RELOAD: 2, TaskType.STOP: 3,
         TaskType.START: 4}


class TaskReason(enum.StrEnum):
    """Why :func:`~unitctl.agent.reconcile.compute_tasks` chose a task (logged with it).

    Not the scheduler's :class:`unitctl.scheduler.plan.PlacementReason`, which says why a
    unit was placed on (or kept off) a machine.
    """

    #: UNLOAD: the file is here, but the schedule no longer puts the unit here
    #: (or wants it inactive).
    NOT_SCHEDULED = "loaded here but not scheduled here"
    #: LOAD: the unit is scheduled here and its file is missing.
    NOT_LOADED = "scheduled here but not loaded"
    #: UNLOAD then LOAD: the file here is not the scheduled version of the unit.
    HASH_DIFFERS = "loaded file differs from the scheduled one"
    #: UNLOAD then LOAD: the ports drop-in here is not the scheduled allocation.
    PORTS_DIFFER = "its ports drop-in differs from the ports allocated now"
    #: START: the unit should run, and this agent has not started it.
    WANT_LAUNCHED = "loaded but not started, and should run"
    #: STOP: the unit should only be loaded, and this agent started it.
    WANT_LOADED = "started, but should only be loaded"
    #: RELOAD: files were written or removed; systemd must re-read them.
    FILES_CHANGED = "unit files changed"


@dataclass(frozen=True, slots=True)
class Task:
    """One step for the executor. ``name`` is empty for RELOAD."""

    type: TaskType
    name: str
    reason: str

    @property
    def sort_key(self) -> tuple[int, str]:
        return ORDER[self.type], self.name
