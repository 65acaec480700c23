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

from unitctl.record import Frozen, init


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

#: The host ports dynamic ``@PORT`` requests are allocated from, when a machine's
#: registration names no range (old agents, or the ``port_range`` default).
DEFAULT_PORT_RANGE = (31000, 31999)


class Needs(Frozen):
    """What a unit takes from its machine (:mod:`unitctl.resources` parses it).

    Attributes:
        cpu_milli: thousandths of a CPU (CPUQuota=50% is 500); 0: no need.
        mem_bytes: bytes of memory (MemoryMax=, else MemoryHigh=); 0: no need.
        dynamic_ports: the names of the host ports to allocate (``PORT``,
            ``PORT_ADMIN``), sorted; each becomes an environment variable.
        fixed_ports: host ports the unit binds itself (``-p 80:3000``), sorted:
            two units that want one of the same ports never share a machine.
        binpack: rank machines by the least room left (pack) instead of the
            most (spread, the default).
    """

    __slots__ = ("binpack", "cpu_milli", "dynamic_ports", "fixed_ports", "mem_bytes")
    cpu_milli: int
    mem_bytes: int
    dynamic_ports: tuple[str, ...]
    fixed_ports: tuple[int, ...]
    binpack: bool

    def __init__(self, cpu_milli: int = 0, mem_bytes: int = 0,
                 dynamic_ports: tuple[str, ...] = (), fixed_ports: tuple[int, ...] = (),
                 binpack: bool = False) -> None:
        init(self, cpu_milli, mem_bytes, dynamic_ports, fixed_ports, binpack)

    @property
    def any(self) -> bool:
        """Tell whether the unit needs anything the scheduler has to count."""
        return bool(self.cpu_milli or self.mem_bytes or self.dynamic_ports or self.fixed_ports)


NO_NEEDS = Needs()


class Capacity(Frozen):
    """What a machine offers to units, as its agent measured it (less its reserve).

    Attributes:
        cpu_milli: thousandths of a CPU; None: not counted (unlimited).
        mem_bytes: bytes of memory; None: not counted (unlimited).
        port_range: the inclusive range dynamic host ports come from.
    """

    __slots__ = ("cpu_milli", "mem_bytes", "port_range")
    cpu_milli: int | None
    mem_bytes: int | None
    port_range: tuple[int, int]

    def __init__(self, cpu_milli: int | None = None, mem_bytes: int | None = None,
                 port_range: tuple[int, int] = DEFAULT_PORT_RANGE) -> None:
        init(self, cpu_milli, mem_bytes, port_range)


#: A machine that reported no capacity (an old agent): nothing is counted.
UNLIMITED = Capacity()


class Requirements(Frozen):
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
        needs: cpu, memory and host ports (:mod:`unitctl.resources`).
        stores: (store, volume) for each shared volume: the machine must declare
            every store (:mod:`unitctl.volumes`).
        moves_without_volume: ``MoveWithoutVolume=yes``: when the machine of its local
            volume is lost, the unit moves without its data (:mod:`unitctl.volumes`).
    """

    __slots__ = ("conflicts", "is_global", "machine_id", "machine_of", "metadata",
                 "moves_without_volume", "needs", "replaces", "stores")
    machine_id: str | None
    metadata: Mapping[str, frozenset[str]]
    machine_of: tuple[str, ...]
    conflicts: tuple[str, ...]
    replaces: tuple[str, ...]
    is_global: bool
    needs: Needs
    stores: tuple[tuple[str, str], ...]
    moves_without_volume: bool

    def __init__(self, machine_id: str | None = None,
                 metadata: Mapping[str, frozenset[str]] | None = None,
                 machine_of: tuple[str, ...] = (), conflicts: tuple[str, ...] = (),
                 replaces: tuple[str, ...] = (), is_global: bool = False,
                 needs: Needs = NO_NEEDS, stores: tuple[tuple[str, str], ...] = (),
                 moves_without_volume: bool = False) -> None:
        init(self, machine_id, {} if metadata is None else metadata, machine_of, conflicts,
             replaces, is_global, needs, stores, moves_without_volume)

    def __hash__(self) -> int:
        items = tuple(sorted((k, tuple(sorted(v))) for k, v in self.metadata.items()))
        return hash(
            (self.machine_id, items, self.machine_of, self.conflicts, self.replaces,
             self.is_global, self.needs, self.stores, self.moves_without_volume)
        )


class Machine(Frozen):
    """A live machine, as its agent registered it.

    Attributes:
        id: the machine id from /etc/machine-id (32 lowercase hex).
        public_ip: the address peers and ssh use; "" when unknown.
        metadata: the machine's ``metadata`` option, ``k=v`` pairs.
        version: the agent's unitctl version.
        capacity: what the machine offers to units; :data:`UNLIMITED` when its
            agent reported none (an old agent: nothing is counted there).
    """

    __slots__ = ("capacity", "id", "metadata", "public_ip", "version")
    id: str
    public_ip: str
    metadata: Mapping[str, str]
    version: str
    capacity: Capacity

    def __init__(self, id: str, public_ip: str = "",
                 metadata: Mapping[str, str] | None = None, version: str = "",
                 capacity: Capacity = UNLIMITED) -> None:
        init(self, id, public_ip, {} if metadata is None else metadata, version, capacity)

    @property
    def short_id(self) -> str:
        """The first 8 characters of the id, fleet's short form."""
        return self.id[:8]

    def __hash__(self) -> int:
        return hash((self.id, self.public_ip, tuple(sorted(self.metadata.items())), self.version,
                     self.capacity))


class UnitRecord(Frozen):
    """A unit as a client stored it: name, body hash and desired state."""

    __slots__ = ("desired", "hash", "name")
    name: str
    hash: str
    desired: DesiredState

    def __init__(self, name: str, hash: str, desired: DesiredState) -> None:
        init(self, name, hash, desired)


class UnitState(Frozen):
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

    __slots__ = (
        "active",
        "error",
        "hash",
        "health",
        "load",
        "machine_id",
        "name",
        "retry_at",
        "sub",
        "waiting",
    )
    name: str
    machine_id: str
    load: str
    active: str
    sub: str
    hash: str
    error: str
    retry_at: float
    waiting: str
    health: str

    def __init__(self, name: str, machine_id: str, load: str, active: str, sub: str,
                 hash: str, error: str = "", retry_at: float = 0.0,
                 waiting: str = "", health: str = "") -> None:
        init(self, name, machine_id, load, active, sub, hash, error, retry_at, waiting, health)


class ScheduleEntry(Frozen):
    """One unit in one machine's schedule: what the agent must make true.

    Attributes:
        ports: the host ports the engine allocated to the unit on this machine,
            ``(("PORT", 31000), ("PORT_ADMIN", 31001))`` sorted by name: the agent
            passes each in as an environment variable of that name.
    """

    __slots__ = ("desired", "hash", "name", "ports")
    name: str
    hash: str
    desired: DesiredState
    ports: tuple[tuple[str, int], ...]

    def __init__(self, name: str, hash: str, desired: DesiredState,
                 ports: tuple[tuple[str, int], ...] = ()) -> None:
        init(self, name, hash, desired, ports)
