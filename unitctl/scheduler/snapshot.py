"""The scheduler's input (an immutable snapshot) and its working copy for one round.

:class:`ClusterSnapshot` is what the engine read from the registry.
:class:`WorkingState` is the picture the scheduler edits while it decides:
which unit is on which machine, indexed per machine so that every check only
looks at the units of one machine. :class:`Relations` answers the name
questions between units (which names a unit's ``Conflicts``/``Replaces`` globs
match), lazily and cached for the round.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from unitctl.glob import matches_glob
from unitctl.model import DesiredState, Machine, Requirements
from unitctl.scheduler.capacity import Allocations, Ledger
from unitctl.scheduler.rules import replace_cycle_holds
from unitctl.volumes import split_pins


@dataclass(frozen=True, slots=True)
class UnitInfo:
    """A unit as the scheduler sees it: name, body hash, desired state, rules."""

    name: str
    hash: str
    desired: DesiredState
    req: Requirements

    @property
    def active(self) -> bool:
        """Tell whether the unit should run somewhere (desired state != inactive)."""
        return self.desired is not DesiredState.INACTIVE


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """Everything one scheduling round reads.

    Attributes:
        machines: live machines by id.
        units: every unit in the registry by name (templates excluded by the caller).
        placements: non-global unit -> the machine it is currently scheduled to.
        avoid: unit -> machines it failed on recently (the failure policy,
            :mod:`unitctl.failover`): it goes there only if no other machine
            passes its rules.
        leave: unit -> the machine it keeps failing on and must leave in this
            round (it stays only if no other machine passes its rules).
        allocations: the dynamic host ports units hold now: unit -> machine ->
            port name -> port (from their schedule entries), kept while the unit
            stays there.
    """

    machines: Mapping[str, Machine]
    units: Mapping[str, UnitInfo]
    placements: Mapping[str, str]
    avoid: Mapping[str, frozenset[str]] = field(default_factory=dict)
    leave: Mapping[str, str] = field(default_factory=dict)
    allocations: Allocations = field(default_factory=dict)
    #: unit -> (machine, volume): the machine its local volume lives on, the only
    #: machine it may run on (:func:`unitctl.volumes.pins`), unless the unit moves
    #: without its volume and that machine is gone (:func:`unitctl.volumes.split_pins`)
    volume_pins: Mapping[str, tuple[str, str]] = field(default_factory=dict)


_EMPTY: frozenset[str] = frozenset()
_GLOB_META = frozenset("*?[\\")


def _literal_prefix(pattern: str) -> str:
    """Return the part of a glob before its first special character."""
    for i, char in enumerate(pattern):
        if char in _GLOB_META:
            return pattern[:i]
    return pattern


class Relations:
    """Glob relations between the active units of one snapshot, computed lazily.

    A glob is matched once against the sorted active names, starting at its
    literal prefix (``web@*.service`` only looks at names from ``web@``).
    Replaces is *effective* only between non-global units, when it is not
    circular (fleet's rule) and not part of a longer replace cycle either, so
    that evictions always terminate. Of the members of a replace cycle only
    the first name is placed at all (:func:`replace_cycle_holds`).
    """

    def __init__(self, units: Mapping[str, UnitInfo]) -> None:
        self._units = units
        self._names = sorted(n for n, u in units.items() if u.active)
        #: the non-global active names (a set that :meth:`add` grows in place: a
        #: frozenset copied per added unit made a bulk start quadratic)
        self._placeable = {n for n in self._names if not units[n].req.is_global}
        self._by_pattern: dict[str, frozenset[str]] = {}
        self._by_globs: dict[tuple[str, ...], frozenset[str]] = {}
        self._by_replace_globs: dict[tuple[str, ...], frozenset[str]] = {}
        self._effective: dict[tuple[str, str], bool] = {}
        self._held: dict[str, tuple[str, str]] | None = None
        self._replace_globs: frozenset[str] | None = None

    def matching(self, pattern: str) -> frozenset[str]:
        """Return the active unit names ``pattern`` matches."""
        found = self._by_pattern.get(pattern)
        if found is None:
            found = self._by_pattern[pattern] = self._scan(pattern)
        return found

    def _scan(self, pattern: str) -> frozenset[str]:
        prefix = _literal_prefix(pattern)
        names = self._names
        i = bisect.bisect_left(names, prefix)
        if prefix == pattern:
            return frozenset((pattern,)) if i < len(names) and names[i] == pattern else _EMPTY
        hits = []
        while i < len(names) and names[i].startswith(prefix):
            if matches_glob(pattern, names[i]):
                hits.append(names[i])
            i += 1
        return frozenset(hits)

    def _matching_any(self, globs: tuple[str, ...]) -> frozenset[str]:
        found = self._by_globs.get(globs)
        if found is None:
            found = frozenset().union(*(self.matching(g) for g in globs))
            self._by_globs[globs] = found
        return found

    def conflict_targets(self, unit: UnitInfo) -> frozenset[str]:
        """Return the names ``unit``'s Conflicts globs match (may include itself)."""
        return self._matching_any(unit.req.conflicts) if unit.req.conflicts else _EMPTY

    def conflicts(self, a: UnitInfo, b: UnitInfo) -> bool:
        """Tell whether two units may not share a machine (either side's globs)."""
        if a.name == b.name:
            return False
        return b.name in self.conflict_targets(a) or a.name in self.conflict_targets(b)

    def replace_targets(self, unit: UnitInfo) -> frozenset[str]:
        """Return the non-global names ``unit``'s Replaces globs match (none for a global)."""
        globs = unit.req.replaces
        if not globs or unit.req.is_global:
            return _EMPTY
        found = self._by_replace_globs.get(globs)
        if found is None:
            found = self._by_replace_globs[globs] = self._matching_any(globs) & self._placeable
        return found

    def cycle_hold(self, name: str) -> tuple[str, str] | None:
        """Return (the unit that runs, the cycle) if ``name`` is a held member of a
        Replaces cycle, else None (computed once per round, on first use)."""
        if self._held is None:
            graph: dict[str, list[str]] = {}
            for source in self._placeable:
                found = self.replace_targets(self._units[source]) - {source}
                if found:
                    graph[source] = sorted(found)
            for targets in list(graph.values()):
                for target in targets:
                    graph.setdefault(target, [])
            self._held = replace_cycle_holds(graph)
        return self._held.get(name)

    def admits(self, unit: UnitInfo) -> bool:
        """Tell whether ``unit`` can join without changing the Replaces graph (it has
        no Replaces and no active unit's Replaces glob matches it): :meth:`add`."""
        if unit.req.replaces:
            return False
        if self._replace_globs is None:
            self._replace_globs = frozenset(
                g for n in self._placeable for g in self._units[n].req.replaces)
        return not any(matches_glob(g, unit.name) for g in self._replace_globs)

    def add(self, unit: UnitInfo, units: Mapping[str, UnitInfo]) -> None:
        """Learn one more active unit that :meth:`admits` (``units`` holds it): the
        name caches are updated, the Replaces cycles stay as they are."""
        self._units = units
        name = unit.name
        bisect.insort(self._names, name)
        if not unit.req.is_global:
            self._placeable.add(name)
        for pattern, found in self._by_pattern.items():
            if matches_glob(pattern, name):
                self._by_pattern[pattern] = found | {name}
        self._by_globs.clear()
        self._by_replace_globs.clear()

    def first_glob(self, globs: tuple[str, ...], name: str) -> str:
        """Return the first of ``globs`` that matches ``name`` (for messages), or ``""``."""
        return next((g for g in globs if matches_glob(g, name)), "")

    def replaces(self, a: str, b: str) -> bool:
        """Tell whether unit ``a`` evicts unit ``b`` when they share a machine."""
        key = (a, b)
        found = self._effective.get(key)
        if found is None:
            found = self._effective[key] = self._edge(a, b) and not self._reaches(b, a)
        return found

    def _edge(self, a: str, b: str) -> bool:
        """fleet's relation: a's globs match b and b's do not match a."""
        if a == b or a not in self._placeable or b not in self._placeable:
            return False
        units = self._units
        return b in self.replace_targets(units[a]) and a not in self.replace_targets(units[b])

    def _reaches(self, start: str, goal: str) -> bool:
        """Tell whether a chain of replace edges leads from ``start`` to ``goal``."""
        seen = {start}
        todo = [start]
        while todo:
            current = todo.pop()
            for nxt in self.replace_targets(self._units[current]):
                if nxt not in seen and self._edge(current, nxt):
                    if nxt == goal:
                        return True
                    seen.add(nxt)
                    todo.append(nxt)
        return False


class WorkingState:
    """Who runs where during one round; mutated as the scheduler decides.

    Only active units are ever placed. Non-global units live in ``placement``
    and ``local``; global units in ``globals_on`` and ``global_runs``.
    ``conflictors``/``replacers`` index the residents that carry Conflicts /
    Replaces globs, so a unit without rules is checked in O(1) per machine.
    """

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.units = snapshot.units
        self._owns_units = False
        self.machines: dict[str, Machine] = {
            m.id: m for m in sorted(snapshot.machines.values(), key=lambda m: m.id)
        }
        self.machine_ids = tuple(self.machines)
        self.relations = Relations(snapshot.units)
        self.placement: dict[str, str] = {}
        self.local: dict[str, set[str]] = {m: set() for m in self.machine_ids}
        self.globals_on: dict[str, set[str]] = {m: set() for m in self.machine_ids}
        self.global_runs: dict[str, set[str]] = {}
        self.conflictors: dict[str, set[str]] = {m: set() for m in self.machine_ids}
        self.replacers: dict[str, set[str]] = {m: set() for m in self.machine_ids}
        self.followers_of = _followers(snapshot.units)
        self.by_short_id: dict[str, list[str]] = {}
        for mid in self.machine_ids:
            self.by_short_id.setdefault(self.machines[mid].short_id, []).append(mid)
        #: unit -> how many times it was taken off a machine this round
        self.moves: dict[str, int] = {}
        #: CPU, memory and host ports per machine (:mod:`.capacity`)
        self.ledger = Ledger(self.machines, snapshot.allocations)
        #: unit -> (machine, volume) it is pinned to by a local volume; and the units
        #: that move without theirs (MoveWithoutVolume=yes, its machine is gone)
        self._all_pins = snapshot.volume_pins
        self.volume_pins, self.left_behind = split_pins(
            self._all_pins, self._moves_without_volume, self.machines)

    def _moves_without_volume(self, unit: str) -> bool:
        info = self.units.get(unit)
        return info is not None and info.req.moves_without_volume

    def load(self, machine: str) -> int:
        """Return the unit count of a machine: placed non-global units + global units."""
        return len(self.local[machine]) + len(self.globals_on[machine])

    def where(self, unit: str) -> str | None:
        """Return the machine a non-global unit is placed on, or None."""
        return self.placement.get(unit)

    def runs_on(self, unit: str, machine: str) -> bool:
        """Tell whether a unit (global or not) runs on a machine."""
        return unit in self.local[machine] or unit in self.globals_on[machine]

    def is_global(self, unit: str) -> bool:
        """Tell whether a unit is a global one."""
        info = self.units.get(unit)
        return info is not None and info.req.is_global

    def machines_with_id(self, machine_id: str) -> list[str]:
        """Return the machines a MachineID value designates (full or 8-char short id)."""
        found = list(self.by_short_id.get(machine_id, ()))
        if machine_id in self.machines and machine_id not in found:
            found.append(machine_id)
        return found

    def place(self, unit: UnitInfo, machine: str) -> None:
        """Put a non-global unit on a machine."""
        self.placement[unit.name] = machine
        self.local[machine].add(unit.name)
        self.ledger.add(unit.name, unit.req.needs, machine)
        if unit.req.conflicts:
            self.conflictors[machine].add(unit.name)
        if unit.req.replaces:
            self.replacers[machine].add(unit.name)

    def unplace(self, unit: str) -> str:
        """Take a non-global unit off its machine; return that machine."""
        machine = self.placement.pop(unit)
        self.local[machine].discard(unit)
        info = self.units.get(unit)
        if info is not None:
            self.ledger.remove(unit, info.req.needs, machine)
        self.conflictors[machine].discard(unit)
        self.replacers[machine].discard(unit)
        self.moves[unit] = self.moves.get(unit, 0) + 1
        return machine

    def run_global(self, unit: UnitInfo, machine: str) -> None:
        """Let a global unit run on a machine."""
        self.globals_on[machine].add(unit.name)
        self.global_runs.setdefault(unit.name, set()).add(machine)
        self.ledger.add(unit.name, unit.req.needs, machine)
        if unit.req.conflicts:
            self.conflictors[machine].add(unit.name)

    def run_global_everywhere(self, unit: UnitInfo) -> None:
        """Let a global unit run on every machine (one without needs: nothing to count)."""
        name = unit.name
        for machine in self.machine_ids:
            self.globals_on[machine].add(name)
        self.global_runs[name] = set(self.machine_ids)
        if unit.req.conflicts:
            for machine in self.machine_ids:
                self.conflictors[machine].add(name)

    def add_unit(self, unit: UnitInfo) -> bool:
        """Take in a unit the round did not know as active (the incremental round,
        :mod:`unitctl.scheduler.incremental`); False, and nothing changed, when it
        would change the Replaces graph."""
        if unit.active and not self.relations.admits(unit):
            return False
        units = self.units if isinstance(self.units, dict) and self._owns_units else dict(
            self.units)  # the snapshot's mapping is the caller's: copied once
        units[unit.name] = unit
        self.units, self._owns_units = units, True
        if unit.name in self._all_pins:  # its MoveWithoutVolume= may be new
            self.volume_pins.pop(unit.name, None)
            self.left_behind.pop(unit.name, None)
            held, left = split_pins({unit.name: self._all_pins[unit.name]},
                                    self._moves_without_volume, self.machines)
            self.volume_pins.update(held)
            self.left_behind.update(left)
        if unit.active:
            self.relations.add(unit, units)
            if not unit.req.is_global:
                for peer in set(unit.req.machine_of) - {unit.name}:
                    self.followers_of[peer] = tuple(sorted(
                        {*self.followers_of.get(peer, ()), unit.name}))
        return True

    def victims(self, unit: UnitInfo, machine: str) -> list[str]:
        """Return the units on ``machine`` that ``unit`` would evict (Replaces), sorted."""
        targets = self.relations.replace_targets(unit)
        if not targets:
            return []
        here = self.local[machine]
        found = targets & here if len(targets) < len(here) else here & targets
        return sorted(v for v in found if self.relations.replaces(unit.name, v))

    def displaced(self, victims: list[str], machine: str) -> list[tuple[str, str | None]]:
        """Return the units that leave ``machine`` with ``victims``: each victim, paired
        with None, then transitively their MachineOf followers there, paired with the
        unit they follow."""
        out: list[tuple[str, str | None]] = [(v, None) for v in victims]
        seen = set(victims)
        todo = deque(victims)
        while todo:
            leader = todo.popleft()
            for follower in self.followers_of.get(leader, ()):
                if follower not in seen and self.placement.get(follower) == machine:
                    seen.add(follower)
                    out.append((follower, leader))
                    todo.append(follower)
        return out


def _followers(units: Mapping[str, UnitInfo]) -> dict[str, tuple[str, ...]]:
    """Return peer -> the sorted active non-global units that name it in MachineOf."""
    found: dict[str, list[str]] = {}
    for name, unit in units.items():
        if unit.active and not unit.req.is_global:
            for peer in unit.req.machine_of:
                if peer != name:
                    found.setdefault(peer, []).append(name)
    return {peer: tuple(sorted(set(names))) for peer, names in found.items()}
