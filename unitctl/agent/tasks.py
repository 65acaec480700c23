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


class Reason(enum.StrEnum):
    NOT_SCHEDULED = "unit loaded but not scheduled here"
    NOT_LOADED = "unit scheduled here but not loaded"
    HASH_DIFFERS = "unit loaded but hash differs to expected"
    WANT_LAUNCHED = "unit currently loaded but desired state is launched"
    WANT_LOADED = "unit currently launched but desired state is loaded"
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
