"""The read models of the client: what ``list-*``, ``cat`` and ``explain`` show.

A :class:`Snapshot` is everything the client reads to describe the cluster at
one moment (units, placements, agents' reports, the engine's explanations and
the machines); it derives fleet's *current* state of a unit
(``determineJobState``): ``loaded`` when the unit is placed on a machine whose
agent reports a systemd state for it, ``launched`` when that state is also
running, else ``inactive``. :class:`Bodies` reads the stored unit texts, and
caches per body hash whether a unit is global. Reads only: nothing here writes.

A unit key that does not decode (a poison key) is left out of the snapshot's
units and listed in :attr:`Snapshot.invalid` (name -> why), so the lists can
show it and ``destroy`` can remove it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from unitctl import xfleet
from unitctl.errors import InvalidUnitError, NotFoundError
from unitctl.failover import FailureRecord, MoveRecord
from unitctl.legend import machine_legend, short_reason
from unitctl.model import DesiredState, Machine, Requirements, UnitRecord, UnitState
from unitctl.registry.failures import failure_store
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile

#: systemd active states that mean "started" (fleet's ``launched``).
RUNNING_STATES = frozenset({"active", "activating", "reloading"})

#: systemd load states that mean the unit file could not be loaded.
BAD_LOAD_STATES = frozenset({"error", "bad-setting", "not-found", "masked"})


@dataclass(frozen=True, slots=True)
class StoredState:
    """An agent's report together with the revision it was written at."""

    state: UnitState
    mod_rev: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the client reads to describe the cluster, at one moment."""

    revision: int
    units: Mapping[str, UnitRecord]
    placements: Mapping[str, str]
    states: Mapping[str, Mapping[str, StoredState]]
    explanations: Mapping[str, Mapping[str, str]]
    machines: Mapping[str, Machine]
    #: unit keys whose value does not decode: name -> why
    invalid: Mapping[str, str] = field(default_factory=dict)

    def placed_state(self, name: str) -> tuple[str | None, StoredState | None]:
        """Return (placed machine, that machine's report) for a unit."""
        machine = self.placements.get(name)
        if machine is None:
            return None, None
        return machine, self.states.get(name, {}).get(machine)

    def current(self, name: str) -> DesiredState:
        """fleet's derived current state of a non-global unit."""
        _, stored = self.placed_state(name)
        if stored is None:
            return DesiredState.INACTIVE
        if stored.state.active in RUNNING_STATES:
            return DesiredState.LAUNCHED
        return DesiredState.LOADED

    def legend(self, machine_id: str, full: bool = False) -> str:
        """fleet's ``machineFullLegend``: ``113f16a7.../10.0.0.1``."""
        return machine_legend(machine_id, self.machines.get(machine_id), full)

    def unplaceable(self, name: str) -> Mapping[str, str] | None:
        """The engine's reasons when a unit wants a machine but has none."""
        rec = self.units.get(name)
        if rec is None or rec.desired is DesiredState.INACTIVE or name in self.placements:
            return None
        return self.explanations.get(name)


def group_states(rows: list[tuple[int, UnitState]]) -> dict[str, dict[str, StoredState]]:
    """``states_with_revs`` rows as unit -> machine -> report."""
    states: dict[str, dict[str, StoredState]] = {}
    for mod_rev, state in rows:
        states.setdefault(state.name, {})[state.machine_id] = StoredState(state, mod_rev)
    return states


async def read_snapshot(registry: Registry) -> Snapshot:
    """Read units, placements, states, explanations and machines.

    The snapshot's revision is that of its first read (the units): a watch
    from ``revision + 1`` sees whatever changed while the later reads ran.
    """
    read = await registry.read_units()
    states = group_states(await registry.states_with_revs())
    machines = {m.id: m for m in await registry.list_machines()}
    return Snapshot(read.revision, read.units, await registry.list_placements(), states,
                    await registry.list_explanations(), machines, read.invalid)


def parse_or_none(body: str | None) -> UnitFile | None:
    """The parsed unit text, or None when it is missing or malformed."""
    if body is None:
        return None
    try:
        return UnitFile.parse(body)
    except InvalidUnitError:
        return None


@dataclass
class Bodies:
    """The stored unit texts: requirements and the per-hash "is it global" cache."""

    registry: Registry
    _global: dict[str, bool] = field(default_factory=dict)

    async def requirements(self, rec: UnitRecord) -> Requirements | None:
        """The [X-Fleet] requirements of a stored unit (None: body missing or malformed)."""
        unit = parse_or_none(await self.registry.get_body(rec.hash))
        return None if unit is None else xfleet.requirements(rec.name, unit)

    async def is_global(self, rec: UnitRecord, unit: UnitFile | None = None) -> bool:
        """Tell whether a stored unit has ``Global=true`` (cached by body hash).

        ``unit`` is the unit's text when the caller already holds it (its hash
        must be the record's); the body is then not read.
        """
        if rec.hash not in self._global:
            if unit is not None and unit.hash() == rec.hash:
                self.remember(rec.hash, xfleet.requirements(rec.name, unit).is_global)
            else:
                req = await self.requirements(rec)
                self.remember(rec.hash, req is not None and req.is_global)
        return self._global[rec.hash]

    def remember(self, sha: str, is_global: bool) -> None:
        """Record what a body says about ``Global=`` (read elsewhere)."""
        self._global[sha] = is_global


async def cat(registry: Registry, name: str) -> str:
    """The stored (serialised) text of a unit."""
    rec = await registry.get_unit(name)
    if rec is None:
        raise NotFoundError(f"Unit {name} not found")
    body = await registry.get_body(rec.hash)
    if body is None:
        raise NotFoundError(f"the body of unit {name} ({rec.hash[:7]}) is missing")
    return body


# ------------------------------------------------------------------ list-unit-files


@dataclass(frozen=True, slots=True)
class UnitFileInfo:
    """One row of ``list-unit-files``."""

    name: str
    hash: str
    desired: DesiredState
    state: DesiredState | None  # None for global units
    is_global: bool
    target: str | None  # machine id of the placement
    target_machine: Machine | None
    description: str
    reason: str  # "" when placed or not wanted anywhere


async def unit_file_rows(registry: Registry, bodies: Bodies,
                         snap: Snapshot | None = None) -> list[UnitFileInfo]:
    """Every stored unit, sorted by name (``snap``: already read); bodies are
    read by hash in bounded batches, never all in one reply."""
    snap = snap or await read_snapshot(registry)
    texts = await registry.get_bodies_by_hash(rec.hash for rec in snap.units.values())
    rows = []
    for name in sorted(snap.units):
        rec = snap.units[name]
        unit = parse_or_none(texts.get(rec.hash))
        is_global = unit is not None and xfleet.requirements(name, unit).is_global
        bodies.remember(rec.hash, is_global)
        desc = (unit.value("Unit", "Description") if unit else None) or ""
        target = None if is_global else snap.placements.get(name)
        reasons = None if is_global else snap.unplaceable(name)
        rows.append(UnitFileInfo(
            name=name, hash=rec.hash, desired=rec.desired,
            state=None if is_global else snap.current(name), is_global=is_global,
            target=target, target_machine=snap.machines.get(target) if target else None,
            description=desc, reason="" if reasons is None else short_reason(reasons)))
    return rows


def reported_states(snap: Snapshot) -> list[UnitState]:
    """Every agent's report sorted by (unit, machine id): the rows of ``list-units``."""
    rows = [s.state for per in snap.states.values() for s in per.values()]
    rows.sort(key=lambda s: (s.name, s.machine_id))
    return rows


# ------------------------------------------------------------------ explain


@dataclass(frozen=True, slots=True)
class Explanation:
    """What ``explain`` tells about one unit."""

    record: UnitRecord
    is_global: bool
    state: DesiredState | None
    placement: str | None
    placement_machine: Machine | None
    reported: tuple[UnitState, ...]
    reasons: Mapping[str, str] | None
    requirements: Requirements | None
    #: machine -> the unit's failure record there (the failure policy)
    failures: Mapping[str, FailureRecord] = field(default_factory=dict)
    #: the unit's moves off failing machines, oldest first
    moves: tuple[MoveRecord, ...] = ()


async def explain(registry: Registry, bodies: Bodies, name: str) -> Explanation:
    """Where a unit is placed, or why it cannot be."""
    snap = await read_snapshot(registry)
    rec = snap.units.get(name)
    if rec is None:
        raise NotFoundError(f"Unit {name} not found")
    req = await bodies.requirements(rec)
    is_global = req is not None and req.is_global
    placement = None if is_global else snap.placements.get(name)
    reported = tuple(sorted((s.state for s in snap.states.get(name, {}).values()),
                            key=lambda s: s.machine_id))
    return Explanation(
        record=rec, is_global=is_global, state=None if is_global else snap.current(name),
        placement=placement,
        placement_machine=snap.machines.get(placement) if placement else None,
        reported=reported, reasons=None if is_global else snap.unplaceable(name),
        requirements=req, failures=await failure_store(registry).failures_of(name),
        moves=await failure_store(registry).moves_of(name))


#: Tells why a unit has not reached what a command waits for (None: it has);
#: :mod:`unitctl.client.wait` builds them and waits on them.
Predicate = Callable[[Snapshot, str], str | None]
