"""The snapshot the client reads of the cluster: what ``list-units`` shows (reads only).

A :class:`Snapshot` is everything the client reads to describe the cluster at
one moment (units, placements, agents' reports, the engine's explanations and
the machines); it derives fleet's *current* state of a unit
(``determineJobState``): ``loaded`` when the unit is placed on a machine whose
agent reports a systemd state for it, ``launched`` when that state is also
running, else ``inactive``.

A unit key that does not decode (a poison key) is left out of the snapshot's
units and listed in :attr:`Snapshot.invalid` (name -> why), so the lists can
show it and ``destroy`` can remove it.

Kept apart from :mod:`unitctl.client.views` (the unit-file rows and
``explain``, which parse unit texts) so that ``list-units`` and the waiting
verbs do not import the unit-file and [X-Fleet] modules.
"""

from __future__ import annotations

from collections.abc import Mapping

from unitctl.legend import machine_legend
from unitctl.model import DesiredState, Machine, UnitRecord, UnitState
from unitctl.record import Frozen, init
from unitctl.registry.registry import Registry

#: systemd active states that mean "started" (fleet's ``launched``).
RUNNING_STATES = frozenset({"active", "activating", "reloading"})

#: systemd load states that mean the unit file could not be loaded.
BAD_LOAD_STATES = frozenset({"error", "bad-setting", "not-found", "masked"})


class StoredState(Frozen):
    """An agent's report together with the revision it was written at."""

    __slots__ = ("mod_rev", "state")
    state: UnitState
    mod_rev: int

    def __init__(self, state: UnitState, mod_rev: int) -> None:
        init(self, state, mod_rev)


class Snapshot(Frozen):
    """Everything the client reads to describe the cluster, at one moment."""

    __slots__ = ("explanations", "invalid", "machines", "placements", "revision", "states",
                 "units")
    revision: int
    units: Mapping[str, UnitRecord]
    placements: Mapping[str, str]
    states: Mapping[str, Mapping[str, StoredState]]
    explanations: Mapping[str, Mapping[str, str]]
    machines: Mapping[str, Machine]
    #: unit keys whose value does not decode: name -> why
    invalid: Mapping[str, str]

    def __init__(self, revision: int, units: Mapping[str, UnitRecord],
                 placements: Mapping[str, str], states: Mapping[str, Mapping[str, StoredState]],
                 explanations: Mapping[str, Mapping[str, str]], machines: Mapping[str, Machine],
                 invalid: Mapping[str, str] | None = None) -> None:
        init(self, revision, units, placements, states, explanations, machines,
             {} if invalid is None else invalid)

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


def reported_states(snap: Snapshot) -> list[UnitState]:
    """Every agent's report sorted by (unit, machine id): the rows of ``list-units``."""
    rows = [s.state for per in snap.states.values() for s in per.values()]
    rows.sort(key=lambda s: (s.name, s.machine_id))
    return rows


class UnitFileInfo(Frozen):
    """One row of ``list-unit-files``."""

    __slots__ = ("description", "desired", "hash", "is_global", "name", "reason", "state",
                 "target", "target_machine")
    name: str
    hash: str
    desired: DesiredState
    state: DesiredState | None  # None for global units
    is_global: bool
    target: str | None  # machine id of the placement
    target_machine: Machine | None
    description: str
    reason: str  # "" when placed or not wanted anywhere

    def __init__(self, name: str, hash: str, desired: DesiredState, state: DesiredState | None,
                 is_global: bool, target: str | None, target_machine: Machine | None,
                 description: str, reason: str) -> None:
        init(self, name, hash, desired, state, is_global, target, target_machine, description,
             reason)
