"""What the scheduler returns: decisions with reasons, resulting placements, rejections.

Every decision and every rejected machine carries a human reason rendered from
one fixed template (:class:`PlacementReason`), so "why" is data: the engine logs it,
``unitctl status`` shows it and tests assert it. Reasons name the rule and the
offending value, e.g. ``metadata region=eu required, machine has region=us``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: The words that begin the reason of a placement that leaves a volume's data behind.
LEFT_BEHIND_MARK = "MOVED WITHOUT ITS VOLUME"


class Action(enum.Enum):
    """What the engine must write for one unit."""

    SCHEDULE = "schedule"
    UNSCHEDULE = "unschedule"


class PlacementReason(enum.StrEnum):
    """The fixed set of reasons (a ``str`` enum); each value is a :meth:`str.format` template."""

    # -- why a placed unit is unscheduled
    UNKNOWN_UNIT = "unit is no longer in the registry"
    GLOBAL_PLACED = "global units are not scheduled to a single machine"
    TARGET_INACTIVE = "desired state is inactive"
    MACHINE_GONE = "machine {machine} went away"
    RULES_BROKEN = "rules no longer hold: {detail}"
    REPLACED = "replaced by {unit} (Replaces={pattern})"
    FOLLOWS_MOVED = "follows {unit} which moved"
    FAILING = "keeps failing on this machine: moving it ({detail})"
    NO_ROOM_NOW = "no room any more: {detail}"

    # -- why a unit is placed on the machine it gets
    LEAST_LOADED = "least loaded machine that passes every rule ({load} units)"
    FOLLOWS = "follows its MachineOf peer {unit}"
    PINNED = "pinned by MachineID={machine_id}"
    MOST_ROOM = "most room left of the machines that pass every rule ({left:.0%} left after)"
    LEAST_ROOM = ("least room left of the machines that pass every rule, Placement=binpack "
                  "({left:.0%} left after)")
    #: leads the reason of a unit placed without its local volume (:meth:`placed`)
    LEFT_BEHIND = (LEFT_BEHIND_MARK + " {volume}: its data stays behind on machine "
                   "{machine}, which is gone; it starts here with an empty volume "
                   "(MoveWithoutVolume=yes); {reason}")

    # -- why a machine cannot take a unit (values of Plan.unplaceable)
    NO_MACHINES = "no machines in the cluster"
    MACHINE_ID = "MachineID={machine_id} is another machine"
    VOLUME = ("waits for machine {machine}: its volume {volume} lives there "
              "(data stays behind)")
    NO_STORE = ("no shared store {store} here (its volume {volume} is on it; a machine "
                "declares it with metadata {key}=/mount/point)")
    METADATA = "metadata {required} required, machine has {actual}"
    MACHINE_OF = "MachineOf peer {unit} is not scheduled here (it is on {where})"
    PEER_UNPLACED = "MachineOf peer {unit} is not placed anywhere"
    MACHINE_OF_CYCLE = "MachineOf cycle: {cycle}"
    CONFLICT = "conflicts with {unit} already there ({rule})"
    GLOBAL_CONFLICT = "conflicts with global unit {unit} there ({rule})"
    WOULD_BE_REPLACED = "would be replaced by {unit} already there (Replaces={pattern})"
    REPLACE_CYCLE = ("circular Replaces ({cycle}): only {unit}, the first name of the "
                     "cycle, is scheduled")
    REPLACE_MOVES_PEER = "replacing {unit} would move its MachineOf peer {peer} away"
    DISPLACE_LIMIT = "would displace {unit}, already moved {moves} times this round"
    AVOIDED = "avoided: the unit failed here recently"
    NO_MEMORY = "needs {need} memory, {free} free (of {total})"
    NO_CPU = "needs {need} CPU, {free} free (of {total})"
    PORT_TAKEN = "host port {port} is taken by {unit} there"
    NO_PORTS = "needs {need} dynamic ports, {free} free in {range}"

    def render(self, **values: object) -> str:
        """Return the reason text with its placeholders filled in."""
        return str.format(self, **values)

    @classmethod
    def placed(cls, reason: str, left_behind: tuple[str, str] | None) -> str:
        """A placement's ``reason``, led by the loud note that the unit's data stays
        behind when it moves without its local volume (``left_behind``: (machine, volume))."""
        if left_behind is None:
            return reason
        return cls.LEFT_BEHIND.render(machine=left_behind[0], volume=left_behind[1],
                                      reason=reason)


@dataclass(frozen=True, slots=True)
class Decision:
    """One change to the cluster's schedule.

    Attributes:
        action: schedule or unschedule.
        unit: the unit's name.
        machine: the machine the unit is scheduled to (SCHEDULE) or taken off
            (UNSCHEDULE).
        reason: why, rendered from a :class:`PlacementReason`.
    """

    action: Action
    unit: str
    machine: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of one scheduling round.

    Decisions are the net change against the snapshot: every UNSCHEDULE comes
    before every SCHEDULE, each group in the order the scheduler decided it.

    Attributes:
        decisions: what the engine must write.
        placements: every non-global unit with desired state != inactive that
            has a machine after this round -> that machine.
        global_placements: every global unit with desired state != inactive ->
            the machines it runs on (possibly none).
        unplaceable: every unit with desired state != inactive that runs
            nowhere -> machine id -> why that machine was rejected; with no
            machines at all the only key is ``""``.
        ports: every unit with dynamic ports that runs somewhere -> machine ->
            port name -> the host port allocated to it there.
        recheck: some unit found no machine while this round released host
            ports, which are free only from the next round on: run another.
    """

    decisions: tuple[Decision, ...]
    placements: Mapping[str, str]
    global_placements: Mapping[str, frozenset[str]]
    unplaceable: Mapping[str, Mapping[str, str]]
    ports: Mapping[str, Mapping[str, Mapping[str, int]]] = field(default_factory=dict)
    recheck: bool = False


def net_decisions(events: Sequence[Decision], before: Mapping[str, str],
                  after: Mapping[str, str]) -> tuple[Decision, ...]:
    """The net change of a round's ``events``: first unschedule from the original
    machine, last schedule to the final one; units that end where they started
    are left out."""
    unscheduled: dict[str, Decision] = {}
    scheduled: dict[str, Decision] = {}
    for decision in events:
        name = decision.unit
        if before.get(name) == after.get(name):
            continue
        if decision.action is Action.UNSCHEDULE:
            if name in before:
                unscheduled.setdefault(name, decision)
        elif name in after:
            scheduled.pop(name, None)
            scheduled[name] = decision
    return (*unscheduled.values(), *scheduled.values())
