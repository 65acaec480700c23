"""From the engine's view of the registry to the schedule it wants (pure).

``build_snapshot`` turns an :class:`EngineView` plus parsed requirements into
the scheduler's :class:`ClusterSnapshot`; ``planned_schedule`` turns the
scheduler's :class:`Plan` into the :class:`PlannedSchedule` the registry commits;
``mass_loss`` spots the "every machine vanished at once" pattern of an etcd
outage, which must not trigger a mass re-placement (fleet issues 1289, 1690).
"""

from __future__ import annotations

from collections.abc import Mapping

from unitctl.engine.view import EngineView, PlannedSchedule
from unitctl.failover import FailurePolicy, MovePlan, plan_moves
from unitctl.model import DesiredState, Requirements, ScheduleEntry, UnitRecord
from unitctl.names import is_template
from unitctl.scheduler import ClusterSnapshot, Plan, UnitInfo
from unitctl.volumes import pins

#: Reason recorded for a unit whose stored body cannot be used.
BAD_BODY = "the stored unit file is missing or invalid: {error}"


def build_snapshot(view: EngineView, reqs: Mapping[str, Requirements],
                   moves: MovePlan | None = None) -> ClusterSnapshot:
    """Build the scheduler's input from units whose requirements parsed (and the
    failure policy's avoid lists and moves, when given)."""
    units = {}
    for name, rec in view.units.items():
        req = reqs.get(name)
        if is_template(name) or req is None:
            continue
        units[name] = UnitInfo(name, rec.hash, rec.desired, req)
    placements = {u: m for u, m in view.placements.items() if u in units}
    avoid = {u: m for u, m in moves.avoid.items() if u in units} if moves else {}
    leave = {u: m for u, m in moves.leave.items() if u in units} if moves else {}
    return ClusterSnapshot(machines=dict(view.machines), units=units, placements=placements,
                           avoid=avoid, leave=leave, allocations=allocations_of(view),
                           volume_pins=pins(view.volumes))


def failure_moves(view: EngineView, reqs: Mapping[str, Requirements],
                  policies: Mapping[str, FailurePolicy], now: float) -> MovePlan:
    """The failure policy's plan for this round (:func:`unitctl.failover.plan_moves`)."""
    known = {n: (p, reqs[n].machine_id is not None) for n, p in policies.items() if n in reqs}
    return plan_moves(view.placements, view.failures, view.moves, known, now)


def allocations_of(view: EngineView) -> dict[str, dict[str, dict[str, int]]]:
    """The host ports held now, from the schedule entries: unit -> machine -> ports.

    Every entry counts, whatever the unit's state: a port is free again only
    once the entry that holds it is gone.
    """
    found: dict[str, dict[str, dict[str, int]]] = {}
    for machine, entries in view.schedules.items():
        for name, entry in entries.items():
            if entry.ports:
                found.setdefault(name, {})[machine] = dict(entry.ports)
    return found


def schedules_of(plan: Plan, units: Mapping[str, UnitRecord | UnitInfo]
                 ) -> dict[str, dict[str, ScheduleEntry]]:
    """Each machine's schedule under ``plan``: its placed and its global units."""
    schedules: dict[str, dict[str, ScheduleEntry]] = {}
    pairs = [*plan.placements.items(),
             *((n, m) for n, ms in plan.global_placements.items() for m in ms)]
    for name, machine in pairs:
        u = units[name]
        ports = tuple(sorted(plan.ports.get(name, {}).get(machine, {}).items()))
        schedules.setdefault(machine, {})[name] = ScheduleEntry(name, u.hash, u.desired, ports)
    return schedules


def planned_schedule(view: EngineView, plan: Plan, bad: Mapping[str, str],
                     counted: frozenset[str] = frozenset()) -> PlannedSchedule:
    """The placements, per-machine schedules and explanations to store.

    ``counted`` names the units with resource needs: those newly placed are
    :attr:`~unitctl.engine.view.PlannedSchedule.guarded`.
    """
    schedules = schedules_of(plan, view.units)
    explanations = {u: dict(r) for u, r in plan.unplaceable.items()
                    if view.units[u].desired is not DesiredState.INACTIVE}
    for name, error in bad.items():
        if name in view.units and view.units[name].desired is not DesiredState.INACTIVE:
            explanations[name] = {"": BAD_BODY.format(error=error)}
    guarded = frozenset(n for n, m in plan.placements.items()
                        if view.placements.get(n) != m and n in counted)
    return PlannedSchedule(dict(plan.placements), schedules, explanations, guarded)


def mass_loss(view: EngineView) -> tuple[int, int]:
    """(machines holding placements that are gone, machines holding placements).

    A caller treats "more than half gone, and more than one" as an outage
    pattern rather than machine deaths.
    """
    used = set(view.placements.values())
    gone = {m for m in used if m not in view.machines}
    return len(gone), len(used)
