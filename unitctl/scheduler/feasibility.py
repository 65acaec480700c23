"""Feasibility: can this machine take this unit, and if not, why not.

Each check is a small function ``(unit, machine, state) -> str | None``:
None means the machine passes, a string is the rejection reason, rendered from
a :class:`~unitctl.scheduler.plan.PlacementReason`. Checks never raise and never
mutate. They are composed in one place, :data:`PLACEMENT_CHECKS` (and
:data:`GLOBAL_CHECKS` for global units), and the first failure wins.
"""

from __future__ import annotations

from collections.abc import Callable

from unitctl.model import Machine
from unitctl.scheduler.plan import PlacementReason
from unitctl.scheduler.snapshot import UnitInfo, WorkingState
from unitctl.volumes import STORE_KEY_PREFIX, missing_store

Check = Callable[[UnitInfo, Machine, WorkingState], "str | None"]


def check_replace_cycle(unit: UnitInfo, machine: Machine, state: WorkingState) -> str | None:
    """A held member of a Replaces cycle runs nowhere: only the cycle's first name runs."""
    held = state.relations.cycle_hold(unit.name)
    if held is None:
        return None
    winner, cycle = held
    return PlacementReason.REPLACE_CYCLE.render(unit=winner, cycle=cycle)


def check_machine_id(unit: UnitInfo, machine: Machine, state: WorkingState) -> str | None:
    """MachineID pins a unit to the machine with that full or 8-character short id."""
    wanted = unit.req.machine_id
    if wanted is None or wanted == machine.id or wanted == machine.short_id:
        return None
    return PlacementReason.MACHINE_ID.render(machine_id=wanted)


def check_volume(unit: UnitInfo, machine: Machine, state: WorkingState) -> str | None:
    """A unit whose local volume is recorded runs only where that volume lives; one with
    shared volumes only on machines that declare every store they are on."""
    pin = state.volume_pins.get(unit.name)
    if pin is not None and pin[0] != machine.id:
        return PlacementReason.VOLUME.render(machine=pin[0], volume=pin[1])
    missing = missing_store(unit.req.stores, machine.metadata) if unit.req.stores else None
    if missing is None:
        return None
    return PlacementReason.NO_STORE.render(store=missing[0], volume=missing[1],
                                           key=f"{STORE_KEY_PREFIX}{missing[0]}")


def check_metadata(unit: UnitInfo, machine: Machine, state: WorkingState) -> str | None:
    """MachineMetadata: the machine has every key (AND) with one of its values (OR)."""
    required = unit.req.metadata
    if not required:
        return None
    have = machine.metadata
    if all(have.get(key) in values for key, values in required.items()):
        return None
    key = min(k for k, values in required.items() if have.get(k) not in values)
    wanted = " or ".join(f"{key}={v}" for v in sorted(required[key]))
    actual = f"{key}={have[key]}" if key in have else f"no {key}"
    return PlacementReason.METADATA.render(required=wanted, actual=actual)


def misplaced_peer(unit: UnitInfo, machine: str, state: WorkingState) -> str | None:
    """Return the first MachineOf peer of ``unit`` that does not run on ``machine``."""
    for peer in unit.req.machine_of:
        if peer != unit.name and not state.runs_on(peer, machine):
            return peer
    return None


def check_machine_of(unit: UnitInfo, machine: Machine, state: WorkingState) -> str | None:
    """MachineOf: every peer is already scheduled on this machine."""
    if not unit.req.machine_of:
        return None
    peer = misplaced_peer(unit, machine.id, state)
    if peer is None:
        return None
    where = state.where(peer)
    if where is None:
        runs = state.global_runs.get(peer)
        if not runs:
            return PlacementReason.PEER_UNPLACED.render(unit=peer)
        where = f"{len(runs)} other machines" if len(runs) > 1 else next(iter(runs))
    return PlacementReason.MACHINE_OF.render(unit=peer, where=where)


def conflicting(unit: UnitInfo, machine: str, state: WorkingState) -> list[str]:
    """Return every unit on ``machine`` (global or not) that ``unit`` conflicts with."""
    name = unit.name
    relations = state.relations
    found = [
        other for other in state.conflictors[machine]
        if other != name and name in relations.conflict_targets(state.units[other])
    ]
    targets = relations.conflict_targets(unit)
    if targets:
        for residents in (state.local[machine], state.globals_on[machine]):
            small, big = (targets, residents) if len(targets) < len(residents) else (
                residents, targets)
            found.extend(o for o in small if o in big and o != name)
    return found


def describe_conflict(unit: UnitInfo, other: str, state: WorkingState) -> str:
    """Return the reason ``unit`` cannot join ``other``, naming whose glob matched."""
    other_info = state.units[other]
    pattern = state.relations.first_glob(unit.req.conflicts, other)
    if pattern:
        rule = f"Conflicts={pattern}"
    else:
        theirs = state.relations.first_glob(other_info.req.conflicts, unit.name)
        rule = f"{other} has Conflicts={theirs}"
    reason = (PlacementReason.GLOBAL_CONFLICT if other_info.req.is_global
              else PlacementReason.CONFLICT)
    return reason.render(unit=other, rule=rule)


def check_conflicts(unit: UnitInfo, machine: Machine, state: WorkingState) -> str | None:
    """Conflicts: no unit on the machine (global ones included) matches either way."""
    if not unit.req.conflicts and not state.conflictors[machine.id]:
        return None
    found = conflicting(unit, machine.id, state)
    return describe_conflict(unit, min(found), state) if found else None


def replaced_by(unit: UnitInfo, machine: str, state: WorkingState) -> str | None:
    """Return the first unit on ``machine`` whose Replaces evicts ``unit``, or None."""
    relations = state.relations
    found = [a for a in state.replacers[machine] if relations.replaces(a, unit.name)]
    return min(found) if found else None


def describe_replace(replacer: str, victim: str, state: WorkingState) -> tuple[str, str]:
    """Return ``(replacer, pattern)``: the Replaces glob of ``replacer`` matching ``victim``."""
    return replacer, state.relations.first_glob(state.units[replacer].req.replaces, victim)


def check_not_replaced(unit: UnitInfo, machine: Machine, state: WorkingState) -> str | None:
    """Replaces, passive side: never place a unit where a unit that replaces it runs."""
    if unit.req.is_global or not state.replacers[machine.id]:
        return None
    replacer = replaced_by(unit, machine.id, state)
    if replacer is None:
        return None
    name, pattern = describe_replace(replacer, unit.name, state)
    return PlacementReason.WOULD_BE_REPLACED.render(unit=name, pattern=pattern)


#: A unit displaced more often than this in one round is left where it is; this
#: only guards against pathological Replaces/MachineOf combinations.
MAX_MOVES = 3


def check_replacing(unit: UnitInfo, machine: Machine, state: WorkingState) -> str | None:
    """Replaces, active side: evicting what the unit replaces must not take its own
    MachineOf peers away, nor move a unit again and again in one round."""
    if not unit.req.replaces:
        return None
    victims = state.victims(unit, machine.id)
    if not victims:
        return None
    displaced = state.displaced(victims, machine.id)
    peers = set(unit.req.machine_of)
    for moving, leader in displaced:
        if moving in peers:
            return PlacementReason.REPLACE_MOVES_PEER.render(unit=leader or moving, peer=moving)
        if state.moves.get(moving, 0) >= MAX_MOVES:
            return PlacementReason.DISPLACE_LIMIT.render(unit=moving, moves=state.moves[moving])
    return None


def check_room(unit: UnitInfo, machine: Machine, state: WorkingState) -> str | None:
    """Resources: the unit's CPU, memory and host ports fit in what the machine has left."""
    needs = unit.req.needs
    if not needs.any:
        return None
    return state.ledger.shortfall(unit.name, needs, machine.id)


#: The placement pipeline, in fleet's AbleToRun order (agent/state.go), after
#: the Replaces-cycle rule (a held member of a cycle runs nowhere). The
#: cheap, static checks come first: MachineID and metadata only read the machine;
#: MachineOf then looks up its peers; Conflicts and Replaces last, as they look at
#: the units already on the machine. Replaces is not a rejection in fleet; here a
#: unit is never placed where it would be replaced at once, and a replacer is
#: never placed where its evictions would drag its own peers along.
PLACEMENT_CHECKS: tuple[Check, ...] = (
    check_replace_cycle,
    check_volume,
    check_machine_id,
    check_metadata,
    check_machine_of,
    check_conflicts,
    check_not_replaced,
    check_replacing,
    check_room,
)

#: What decides whether a global unit runs on a machine (fleet's agent only checks
#: the first two): metadata, conflicts with the global units accepted there, and
#: room (resources: the global units accepted there count).
GLOBAL_CHECKS: tuple[Check, ...] = (check_metadata, check_conflicts, check_room)


def first_failure(
    unit: UnitInfo, machine: Machine, state: WorkingState,
    checks: tuple[Check, ...] = PLACEMENT_CHECKS,
) -> str | None:
    """Run ``checks`` in order; return the first rejection reason, or None if all pass."""
    for check in checks:
        reason = check(unit, machine, state)
        if reason is not None:
            return reason
    return None
