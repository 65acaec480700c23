"""The pure scheduler: ``schedule(snapshot) -> Plan``.

No I/O, no clock, no randomness: the same snapshot always gives the same plan
(every iteration is over sorted names or machine ids). One round is fleet's
engine reconcile (``engine/reconciler.go``) with its known bugs fixed:

1. **Global units** (desired != inactive), in name order, run on every machine
   that passes :data:`~unitctl.scheduler.feasibility.GLOBAL_CHECKS` (metadata,
   then conflicts with the global units accepted there), so among conflicting
   global units the alphabetically first wins per machine. They count toward
   load and conflicts for everything after.
2. **Validate** existing placements in name order: unschedule units that are
   inactive, unknown, global, on a dead machine, held by a Replaces cycle
   (of the units whose Replaces globs reach each other, only the first name
   is scheduled: :mod:`~unitctl.scheduler.rules`), or whose MachineID/metadata
   no longer hold; then drop followers whose MachineOf peers are not with them;
   then conflicts (a global unit always wins; of two placed units the
   alphabetically first stays); then units replaced by a unit on their
   machine; then followers orphaned by those moves. Every removal updates the
   working state at once, so the same round re-places the unit.
3. **Place** every unplaced unit (desired loaded/launched), by name, except
   that a unit waits until its MachineOf peers are resolved (topological
   order); units left waiting on each other form a MachineOf cycle and are
   unplaceable. A unit goes to the least-loaded machine (ties by id) passing
   :data:`~unitctl.scheduler.feasibility.PLACEMENT_CHECKS`. A unit with
   Replaces evicts what it replaces there (with the victims' MachineOf
   followers); evicted units are re-placed in the same round and units that
   found no machine are retried, because machines just got emptier.
4. **Plan**: decisions are the net change against the snapshot (a unit that
   moved twice is reported once), unschedules first.

Valid placements never move, so scheduling the resulting placements again
gives no decisions.
"""

from __future__ import annotations

from unitctl.scheduler.plan import Action, Decision, PlacementReason, Plan
from unitctl.scheduler.round import Round
from unitctl.scheduler.snapshot import ClusterSnapshot, UnitInfo

__all__ = [
    "Action",
    "ClusterSnapshot",
    "Decision",
    "PlacementReason",
    "Plan",
    "UnitInfo",
    "schedule",
]


def schedule(snapshot: ClusterSnapshot) -> Plan:
    """Decide where every unit of ``snapshot`` runs.

    Args:
        snapshot: live machines, units and current placements.

    Returns:
        The plan: decisions with reasons, resulting placements, and for every
        unit that could not be placed, why each machine rejected it.
    """
    return Round(snapshot).run()
