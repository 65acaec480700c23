"""Value objects shared by every layer (pure, no I/O).

Vocabulary (fleet's):

* *desired* state (``DesiredState``): what a user asked for with
  submit/load/start (``inactive`` / ``loaded`` / ``launched``);
* *schedule*: the engine's decision of which machine runs a unit;
* *unit state*: what systemd reports for a unit on a machine
  (load / active / sub), published by that machine's agent.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class DesiredState(enum.Enum):
    """A unit's desired state, as fleet's ``JobState``."""

    INACTIVE = "inactive"
    LOADED = "loaded"
    LAUNCHED = "launched"

    @property
    def rank(self) -> int:
        """Order inactive < loaded < launched."""
        return _RANK[self]


_RANK = {DesiredState.INACTIVE: 0, DesiredState.LOADED: 1, DesiredState.LAUNCHED: 2}


@dataclass(frozen=True, slots=True)
class Requirements:
    """The placement rules of a unit, parsed from its ``[X-Fleet]`` section.

    Specifiers (%n %N %p %i) are already expanded and legacy names
    (X-ConditionMachineOf, ...) already merged in.

    Attributes:
        machine_id: a full (32 hex) or short (8 hex) machine id, or None.
        metadata: key -> allowed values; a machine must have every key with one
            of its values (AND across keys, OR within a key).
        machine_of: exact names of units this unit must share a machine with.
        conflicts: globs of unit names this unit must not share a machine with.
        replaces: globs of unit names this unit evicts from its machine.
        is_global: run on every machine that matches ``metadata``/``conflicts``.
    """

    machine_id: str | None = None
    metadata: Mapping[str, frozenset[str]] = field(default_factory=dict)
    machine_of: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    is_global: bool = False

    def __hash__(self) -> int:
        items = tuple(sorted((k, tuple(sorted(v))) for k, v in self.metadata.items()))
        return hash(
            (self.machine_id, items, self.machine_of, self.conflicts, self.replaces,
             self.is_global)
        )


@dataclass(frozen=True, slots=True)
class Machine:
    """A live machine, as its agent registered it.

    Attributes:
        id: the machine id from /etc/machine-id (32 lowercase hex).
        public_ip: the address peers and ssh use; "" when unknown.
        metadata: the machine's ``metadata`` option, ``k=v`` pairs.
        version: the agent's unitctl version.
    """

    id: str
    public_ip: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    version: str = ""

    @property
    def short_id(self) -> str:
        """The first 8 characters of the id, fleet's short form."""
        return self.id[:8]

    def __hash__(self) -> int:
        return hash((self.id, self.public_ip, tuple(sorted(self.metadata.items())), self.version))


@dataclass(frozen=True, slots=True)
class UnitRecord:
    """A unit as a client stored it: name, body hash and desired state."""

    name: str
    hash: str
    desired: DesiredState


@dataclass(frozen=True, slots=True)
class UnitState:
    """systemd's view of a unit on one machine, as its agent reported it.

    Attributes:
        error: the unit's last failed task on that machine, one line for a user
            (``start refused by systemd: ...``); "" when it has none.
        retry_at: when the agent tries again (Unix seconds); 0 without an error.
        waiting: why the agent holds the unit's start or stop back (dependency
            order, :mod:`unitctl.dependencies`); "" when it does not.
        health: the unit's health check (:mod:`unitctl.health`): ``starting``,
            ``healthy`` or ``unhealthy``; "" when it has no check or is not active.
    """

    name: str
    machine_id: str
    load: str
    active: str
    sub: str
    hash: str
    error: str = ""
    retry_at: float = 0.0
    waiting: str = ""
    health: str = ""


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One unit in one machine's schedule: what the agent must make true."""

    name: str
    hash: str
    desired: DesiredState
