"""The incremental round (pure): place only what changed, with the full round's result.

A full round that unscheduled nothing, released no host port and ran without
the failure policy's avoid/leave lists ends in the working state that the next
full round would rebuild from its result (valid placements never move, so its
validation phase keeps them all). :class:`Standing` keeps that state.

When what changed since is only units the standing state does not hold as
active (new names, or units that were inactive), none of them global, none
with ``Replaces=``, none matched by an active unit's ``Replaces=`` glob,
:meth:`Standing.place` takes them in and runs the placement phase, with the
same code, over them and the units that found no machine before (a full round
retries those too). Its plan equals the plan of :func:`~unitctl.scheduler.schedule`
over the new snapshot (decisions, placements, rejections, ports:
``tests/unit/test_incremental.py``). Anything else returns None and the caller
runs a full round: a unit that was active changed or went, a global unit, a
Replaces rule, a unit with needs while a global unit is refused somewhere (its
refusal counts what the machine has left, held ports included), and whatever
the snapshot holds besides units (machines, metadata, volumes, failures: the
caller's to tell). A round that unscheduled a
unit (an eviction by a unit that waited for a new MachineOf peer) is still
exact, but the state it leaves is not a standing one: the next call returns None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from unitctl.scheduler.plan import Action, Plan, net_decisions
from unitctl.scheduler.round import Round
from unitctl.scheduler.snapshot import ClusterSnapshot, UnitInfo


@dataclass(frozen=True, slots=True)
class Increment:
    """An incremental round's result.

    Attributes:
        plan: the plan a full round over the new snapshot gives.
        affected: the units whose placement, ports or rejection may differ from
            before the round: every other unit's are as they were.
    """

    plan: Plan
    affected: frozenset[str]


def schedule_keeping(snapshot: ClusterSnapshot) -> tuple[Plan, Standing | None]:
    """:func:`~unitctl.scheduler.schedule`, and the standing state it leaves (or None)."""
    rnd = Round(snapshot)
    plan = rnd.run()
    return plan, Standing.after(rnd, plan)


class Standing:
    """The working state a round left, as the next round would rebuild it."""

    def __init__(self, rnd: Round, plan: Plan) -> None:
        self.snapshot = rnd.snapshot
        self.state = rnd.state
        self.global_failed = dict(rnd.global_failed)
        self.global_refused = rnd.global_refused
        #: the non-global units that found no machine -> why (retried every round)
        self.failed = dict(rnd.failed)
        self.global_placements = plan.global_placements
        self.usable = True
        self.state.ledger.previous = plan.ports  # what the next round reads as held

    @classmethod
    def after(cls, rnd: Round, plan: Plan) -> Standing | None:
        """The standing state of a finished round, or None when the next round
        might change placements the round kept (see the module docstring)."""
        snap = rnd.snapshot
        if rnd.removed or plan.recheck or snap.avoid or snap.leave:
            return None
        if rnd.state.ledger.released():
            return None
        return cls(rnd, plan)

    def takes(self, changed: Mapping[str, UnitInfo]) -> bool:
        """Tell whether :meth:`place` can handle ``changed`` (nothing is changed)."""
        if not self.usable:
            return False
        state = self.state
        for name, unit in changed.items():
            old = state.units.get(name)
            if (old is not None and old.active) or unit.req.is_global:
                return False
            if self.global_refused and unit.req.needs.any:
                return False  # a global refused for room: a full round words it anew
            if unit.active and not state.relations.admits(unit):
                return False
        return True

    def place(self, changed: Mapping[str, UnitInfo]) -> Increment | None:
        """Take in ``changed`` (new or formerly inactive units) and place them, or
        None (nothing changed) when a full round is needed."""
        if not self.takes(changed):
            return None
        state = self.state
        for name in sorted(changed):
            state.add_unit(changed[name])
        todo = set(self.failed) | {n for n, u in changed.items() if u.active}
        rnd = Round(self.snapshot, state)
        rnd.global_failed = self.global_failed
        rnd.place_only(set(todo))
        self.failed = dict(rnd.failed)
        plan = self._plan(rnd)
        state.ledger.previous = plan.ports
        self.usable = not rnd.removed
        return Increment(plan, frozenset(todo | {d.unit for d in rnd.events}))

    def _plan(self, rnd: Round) -> Plan:
        """The plan of the round, as :meth:`Round._plan` builds it for a full one."""
        state = self.state
        before: dict[str, str | None] = {}
        for d in rnd.events:  # a unit placed when the round began is first taken off
            before.setdefault(d.unit, d.machine if d.action is Action.UNSCHEDULE else None)
        placed_before = {n: m for n, m in before.items() if m is not None}
        unplaceable = {**rnd.failed, **self.global_failed}
        refused = bool(unplaceable or self.global_refused)
        return Plan(
            decisions=net_decisions(rnd.events, placed_before, state.placement),
            placements=dict(state.placement),
            global_placements=self.global_placements,
            unplaceable=dict(sorted(unplaceable.items())),
            ports={name: {m: dict(got) for m, got in sorted(per_machine.items())}
                   for name, per_machine in sorted(state.ledger.allocations.items())},
            recheck=bool(rnd.removed) and refused and state.ledger.released(),
        )
