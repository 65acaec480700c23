"""The engine's incremental round: what changed is only new units, so place only those.

After a full round that moved nothing (:class:`~unitctl.scheduler.incremental.Standing`),
the engine keeps the scheduler's working state. The next round takes the fast
path when everything the mirror applied since (:meth:`Mirror.take_changes`)
is unit keys plus the engine's own writes, read back as it wrote them, and:

* the mirror is the one the standing state was built over (a resync period
  rebuilds it: then a full round);
* no machine, metadata, volume, failure or move key changed, no key failed to
  decode, no move of the failure policy is due, no machine was missing;
* every changed unit is new or was inactive, is still stored, its body
  parses, and the scheduler's own conditions hold (not global, no Replaces=,
  matched by no Replaces= glob: :meth:`Standing.takes`).

Then the round costs the changed units: their requirements are parsed, they
(and the units that found no machine before) are placed, and only their keys
are diffed and committed (:func:`partial_view`, :func:`restricted`). Anything
else, and any round whose commit skipped a group or asked for a recheck,
drops the standing state: the next round is a full one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from unitctl.engine.mirror import Changes, Mirror
from unitctl.engine.view import EngineView
from unitctl.model import Requirements, UnitRecord
from unitctl.names import is_template
from unitctl.scheduler import Plan, UnitInfo
from unitctl.scheduler.incremental import Increment, Standing


class FastPath:
    """The standing state between rounds, and whether the next round may use it."""

    def __init__(self) -> None:
        self.standing: Standing | None = None
        self.mirror: Mirror | None = None
        #: the values of the keys the last round wrote (None: deleted)
        self.expected: Mapping[str, bytes | None] = {}

    def keep(self, standing: Standing | None, mirror: Mirror | None,
             expected: Mapping[str, bytes | None]) -> None:
        """After a round: keep its standing state (None drops it)."""
        self.standing = standing if mirror is not None else None
        self.mirror = mirror
        self.expected = dict(expected)

    def drop(self) -> None:
        self.standing = None

    def records(self, mirror: Mirror, changes: Changes) -> dict[str, UnitRecord] | None:
        """The changed units' records when the round may be incremental, else None."""
        if self.standing is None or mirror is not self.mirror or changes.other:
            return None
        if not changes.units or mirror.failures:
            return None
        if any(mirror.written.get(k) != self.expected.get(k) for k in changes.written):
            return None  # someone else wrote the engine's keys
        found: dict[str, UnitRecord] = {}
        for name in changes.units:
            rec = mirror.units.get(name)
            if rec is None or name in mirror.invalid_units:
                return None
            if not is_template(name):  # templates are never scheduled
                found[name] = rec
        return found

    def place(self, records: Mapping[str, UnitRecord],
              reqs: Mapping[str, Requirements | str]) -> Increment | None:
        """Place the changed units (None: a full round is needed; nothing changed)."""
        assert self.standing is not None
        infos: dict[str, UnitInfo] = {}
        for name, rec in records.items():
            req = reqs[name]
            if isinstance(req, str):
                return None  # a body that does not parse: the full round explains it
            infos[name] = UnitInfo(name, rec.hash, rec.desired, req)
        inc = self.standing.place(infos)
        if inc is not None and not self.standing.usable:
            self.standing = None
        return inc


def partial_view(mirror: Mirror, names: Collection[str]) -> EngineView:
    """The mirror's entries of ``names`` only (the machines whole, uncopied)."""
    wanted = set(names)
    return EngineView(
        mirror.revision,
        {n: mirror.units[n] for n in wanted if n in mirror.units},
        {n: mirror.unit_revs[n] for n in wanted if n in mirror.unit_revs},
        {n: mirror.placements[n] for n in wanted if n in mirror.placements},
        {n: mirror.placement_revs[n] for n in wanted if n in mirror.placement_revs},
        {m: found for m, entries in mirror.schedules.items()
         if (found := {n: entries[n] for n in wanted if n in entries})},
        mirror.machines,
        {n: mirror.explanations[n] for n in wanted if n in mirror.explanations})


def restricted(plan: Plan, names: Collection[str]) -> Plan:
    """``plan`` for ``names`` only (their placements, rejections and ports)."""
    wanted = set(names)
    return Plan(
        decisions=plan.decisions,
        placements={n: plan.placements[n] for n in wanted if n in plan.placements},
        global_placements={},
        unplaceable={n: plan.unplaceable[n] for n in wanted if n in plan.unplaceable},
        ports={n: plan.ports[n] for n in wanted if n in plan.ports},
        recheck=plan.recheck)
