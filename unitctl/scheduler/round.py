"""One scheduling round (pure): fleet's engine reconcile in four phases.

:func:`unitctl.scheduler.schedule` runs one :class:`Round` over a snapshot; the
package docstring describes the phases (globals, validate, place, plan) and
the order each one follows.
"""

from __future__ import annotations

import heapq

from unitctl.scheduler.feasibility import (
    GLOBAL_CHECKS,
    check_machine_id,
    check_machine_of,
    check_metadata,
    check_replace_cycle,
    check_room,
    check_volume,
    conflicting,
    describe_conflict,
    describe_replace,
    first_failure,
    misplaced_peer,
    replaced_by,
)
from unitctl.scheduler.plan import Action, Decision, PlacementReason, Plan, net_decisions
from unitctl.scheduler.ranking import LeastLoaded, by_load, by_room
from unitctl.scheduler.rules import machine_of_cycles
from unitctl.scheduler.snapshot import ClusterSnapshot, UnitInfo, WorkingState


class Round:
    """One scheduling round: the working state plus the placement queue."""

    def __init__(self, snapshot: ClusterSnapshot, state: WorkingState | None = None) -> None:
        self.snapshot = snapshot
        self.state = WorkingState(snapshot) if state is None else state  # kept: .incremental
        self.ranker: LeastLoaded | None = None
        self.events: list[Decision] = []
        self.removed: set[str] = set()
        self.failed: dict[str, dict[str, str]] = {}
        self.global_failed: dict[str, dict[str, str]] = {}
        self.global_refused = False  # a global unit was refused on some machine
        # phase 3: units still to resolve, the queue by name, units waiting on a peer
        self.unresolved: set[str] = set()
        self.queue: list[str] = []
        self.waiting: dict[str, list[str]] = {}

    def run(self) -> Plan:
        """Run the phases in order and return the plan."""
        self._run_globals()
        self._validate()
        self._place_all()
        return self._plan()

    def place_only(self, names: set[str]) -> None:
        """Phase 3 alone, for ``names``, on a state kept from an earlier round."""
        self._place_all(names)

    # ------------------------------------------------------------ 1. global units

    def _run_globals(self) -> None:
        state = self.state
        accepted: set[str] = set()
        with_globs: list[UnitInfo] = []  # accepted global units that carry Conflicts
        for name in sorted(state.units):
            unit = state.units[name]
            if not (unit.active and unit.req.is_global):
                continue
            state.global_runs[name] = set()
            rivals = bool(state.relations.conflict_targets(unit) & accepted) or any(
                name in state.relations.conflict_targets(g) for g in with_globs)
            if unit.req.metadata or rivals or unit.req.needs.any:
                self._run_global(unit)
            else:
                state.run_global_everywhere(unit)  # no rule can reject a machine
            accepted.add(name)
            if unit.req.conflicts:
                with_globs.append(unit)
            if not state.machines:
                self.global_failed[name] = _no_machines()

    def _run_global(self, unit: UnitInfo) -> None:
        state = self.state
        reasons: dict[str, str] = {}
        for machine_id, machine in state.machines.items():
            reason = first_failure(unit, machine, state, GLOBAL_CHECKS)
            if reason is None:
                state.run_global(unit, machine_id)
            else:
                reasons[machine_id] = reason
        self.global_refused |= bool(reasons)
        if reasons and len(reasons) == len(state.machines):
            self.global_failed[unit.name] = reasons

    # ------------------------------------------------------ 2. validate placements

    def _validate(self) -> None:
        kept = self._keep_placed()
        self._drop_orphans(kept)
        self._drop_conflicting(kept)
        self._drop_replaced(kept)
        self._drop_orphans(kept)

    def _keep_placed(self) -> list[UnitInfo]:
        """Unschedule what is wrong whatever the other units do; place the rest."""
        kept: list[UnitInfo] = []
        for name, machine in sorted(self.snapshot.placements.items()):
            problem = self._static_problem(name, machine)
            if problem is None:
                kept.append(self.state.units[name])
                self.state.place(self.state.units[name], machine)
            else:
                self.removed.add(name)
                self._record(Action.UNSCHEDULE, name, machine, problem)
        return kept

    def _static_problem(self, name: str, machine_id: str) -> str | None:
        unit = self.state.units.get(name)
        if unit is None:
            return PlacementReason.UNKNOWN_UNIT.render()
        if unit.req.is_global:
            return PlacementReason.GLOBAL_PLACED.render()
        if not unit.active:
            return PlacementReason.TARGET_INACTIVE.render()
        machine = self.state.machines.get(machine_id)
        if machine is None:
            return PlacementReason.MACHINE_GONE.render(machine=machine_id)
        held = check_replace_cycle(unit, machine, self.state)
        if held is not None:
            return held
        if self.snapshot.leave.get(name) == machine_id:
            return PlacementReason.FAILING.render(detail="failure policy")
        broken = check_volume(unit, machine, self.state) or check_machine_id(
            unit, machine, self.state) or check_metadata(unit, machine, self.state)
        if broken:
            return PlacementReason.RULES_BROKEN.render(detail=broken)
        room = check_room(unit, machine, self.state)  # global units and earlier names first
        return PlacementReason.NO_ROOM_NOW.render(detail=room) if room else None

    def _drop_orphans(self, kept: list[UnitInfo]) -> None:
        """Unschedule followers whose MachineOf peers are not on their machine."""
        state = self.state
        todo = [u.name for u in kept if u.req.machine_of]
        heapq.heapify(todo)
        while todo:
            unit = state.units[heapq.heappop(todo)]
            machine = state.where(unit.name)
            peer = None if machine is None else misplaced_peer(unit, machine, state)
            if machine is None or peer is None:
                continue
            if peer in self.removed and state.units[peer].active:
                reason = PlacementReason.FOLLOWS_MOVED.render(unit=peer)
            else:
                detail = check_machine_of(unit, state.machines[machine], state)
                reason = PlacementReason.RULES_BROKEN.render(detail=detail)
            self._take_off(unit.name, reason)
            for follower in state.followers_of.get(unit.name, ()):
                heapq.heappush(todo, follower)

    def _drop_conflicting(self, kept: list[UnitInfo]) -> None:
        """Of conflicting units, keep global ones, then the alphabetically first."""
        state = self.state
        for unit in kept:
            machine = state.where(unit.name)
            if machine is None:
                continue
            blockers = [
                other for other in conflicting(unit, machine, state)
                if other < unit.name or state.is_global(other)
            ]
            if blockers:
                detail = describe_conflict(unit, min(blockers), state)
                self._take_off(unit.name, PlacementReason.RULES_BROKEN.render(detail=detail))

    def _drop_replaced(self, kept: list[UnitInfo]) -> None:
        """Unschedule units that share a machine with a unit replacing them."""
        state = self.state
        for unit in kept:
            machine = state.where(unit.name)
            replacer = None if machine is None else replaced_by(unit, machine, state)
            if replacer is not None:
                by, pattern = describe_replace(replacer, unit.name, state)
                self._take_off(unit.name, PlacementReason.REPLACED.render(unit=by, pattern=pattern))

    # -------------------------------------------------------------- 3. placement

    def _place_all(self, unresolved: set[str] | None = None) -> None:
        """Place every unplaced unit (or only ``unresolved``: the incremental round)."""
        state = self.state
        self.ranker = LeastLoaded({m: state.load(m) for m in state.machine_ids})
        self.unresolved = {
            name for name, unit in state.units.items()
            if unit.active and not unit.req.is_global and name not in state.placement
        } if unresolved is None else unresolved
        self.queue = sorted(self.unresolved)
        while self.unresolved:
            self._drain()
            if self.unresolved:
                self._break_cycles()

    def _drain(self) -> None:
        """Place queued units by name; a unit whose peer is unresolved waits for it."""
        while self.queue:
            name = heapq.heappop(self.queue)
            if name not in self.unresolved:
                continue
            unit = self.state.units[name]
            blocker = next(
                (p for p in unit.req.machine_of if p != name and p in self.unresolved), None)
            if blocker is not None:
                self.waiting.setdefault(blocker, []).append(name)
                continue
            machine, reasons = self._choose(unit)
            if machine is None:
                self.failed[name] = reasons
            else:
                self._put(unit, machine)
            self._resolve(name)

    def _resolve(self, name: str) -> None:
        """Mark a unit placed or failed; wake up the units waiting for it."""
        self.unresolved.discard(name)
        for waiter in self.waiting.pop(name, ()):
            heapq.heappush(self.queue, waiter)

    def _requeue(self, name: str) -> None:
        self.unresolved.add(name)
        heapq.heappush(self.queue, name)

    def _choose(self, unit: UnitInfo) -> tuple[str | None, dict[str, str]]:
        """Return the machine for ``unit``, or None and every machine's rejection.

        Machines the unit failed on (``avoid``, ``leave``) are taken only when
        no other machine passes its rules.
        """
        if not self.state.machine_ids:
            return None, _no_machines()
        avoid = self.snapshot.avoid.get(unit.name, frozenset())
        if unit.name in self.snapshot.leave:
            avoid |= {self.snapshot.leave[unit.name]}
        chosen, reasons = self._choose_among(unit, avoid)
        if chosen is None and avoid:
            fallback, _ = self._choose_among(unit, frozenset())
            if fallback is not None:
                return fallback, {}
        return chosen, reasons

    def _choose_among(self, unit: UnitInfo, avoid: frozenset[str]
                      ) -> tuple[str | None, dict[str, str]]:
        state = self.state
        shortlist = self._shortlist(unit)
        if shortlist is None and (unit.req.needs.cpu_milli or unit.req.needs.mem_bytes):
            return self._choose_by_room(unit)
        if shortlist is not None:
            for machine_id in by_load(shortlist, state.load):
                if machine_id not in avoid and first_failure(
                        unit, state.machines[machine_id], state) is None:
                    return machine_id, {}
        reasons: dict[str, str] = {}

        def accept(machine_id: str) -> bool:
            reason = PlacementReason.AVOIDED.render() if machine_id in avoid else first_failure(
                unit, state.machines[machine_id], state)
            if reason is not None:
                reasons[machine_id] = reason
            return reason is None

        assert self.ranker is not None
        chosen = self.ranker.first(accept)
        return chosen, {} if chosen is not None else dict(sorted(reasons.items()))

    def _choose_by_room(self, unit: UnitInfo) -> tuple[str | None, dict[str, str]]:
        """Every machine's checks; the feasible one with the most room left wins
        (the least with ``Placement=binpack``)."""
        state = self.state
        reasons: dict[str, str] = {}
        feasible: list[str] = []
        for machine_id in state.machine_ids:
            reason = first_failure(unit, state.machines[machine_id], state)
            if reason is None:
                feasible.append(machine_id)
            else:
                reasons[machine_id] = reason
        if not feasible:
            return None, reasons
        needs = unit.req.needs
        ranked = by_room(feasible, lambda m: state.ledger.room_left(needs, m), state.load,
                         needs.binpack)
        return ranked[0], {}

    def _shortlist(self, unit: UnitInfo) -> list[str] | None:
        """Return the only machines that can pass MachineID/MachineOf, or None for all."""
        pin = self.state.volume_pins.get(unit.name)
        if pin is not None:
            return [pin[0]] if pin[0] in self.state.machines else []
        if unit.req.machine_id is not None:
            return self.state.machines_with_id(unit.req.machine_id)
        for peer in unit.req.machine_of:
            if peer != unit.name:
                where = self.state.where(peer)
                return None if where is None else [where]
        return None

    def _put(self, unit: UnitInfo, machine: str) -> None:
        """Schedule ``unit`` on ``machine``; evict what it replaces there."""
        state = self.state
        victims = state.victims(unit, machine)
        displaced = state.displaced(victims, machine) if victims else []
        self._record(Action.SCHEDULE, unit.name, machine, PlacementReason.placed(
            self._placement_reason(unit, machine), state.left_behind.get(unit.name)))
        state.place(unit, machine)
        self._sync(machine)
        for name, leader in displaced:
            if leader is None:
                by, pattern = describe_replace(unit.name, name, state)
                reason = PlacementReason.REPLACED.render(unit=by, pattern=pattern)
            else:
                reason = PlacementReason.FOLLOWS_MOVED.render(unit=leader)
            self._take_off(name, reason)
            self._requeue(name)
        if displaced:
            for name in sorted(self.failed):
                self._requeue(name)
            self.failed.clear()

    def _placement_reason(self, unit: UnitInfo, machine: str) -> str:
        if unit.req.machine_id is not None:
            return PlacementReason.PINNED.render(machine_id=unit.req.machine_id)
        peer = next((p for p in unit.req.machine_of if p != unit.name), None)
        if peer is not None:
            return PlacementReason.FOLLOWS.render(unit=peer)
        needs = unit.req.needs
        if needs.cpu_milli or needs.mem_bytes:
            reason = PlacementReason.LEAST_ROOM if needs.binpack else PlacementReason.MOST_ROOM
            return reason.render(left=self.state.ledger.room_left(needs, machine))
        return PlacementReason.LEAST_LOADED.render(load=self.state.load(machine))

    def _break_cycles(self) -> None:
        """Fail the units on MachineOf cycles, which would wait for each other forever."""
        state = self.state
        graph = {
            name: sorted({p for p in state.units[name].req.machine_of
                          if p != name and p in self.unresolved})
            for name in self.unresolved
        }
        cycles = machine_of_cycles(graph)
        for name in sorted(cycles):
            reason = PlacementReason.MACHINE_OF_CYCLE.render(cycle=cycles[name])
            self.failed[name] = {m: reason for m in state.machine_ids} or _no_machines()
        if not cycles:  # cannot happen: every waiting unit waits on an unresolved one
            for name in sorted(self.unresolved):
                self.failed[name] = _no_machines()
            cycles = dict.fromkeys(self.unresolved, "")
        for name in sorted(cycles):
            self._resolve(name)

    # ----------------------------------------------------------------- helpers

    def _take_off(self, name: str, reason: str) -> None:
        """Unschedule a placed unit now, so that later checks in this round see it gone."""
        machine = self.state.unplace(name)
        self.removed.add(name)
        self._sync(machine)
        self._record(Action.UNSCHEDULE, name, machine, reason)

    def _sync(self, machine: str) -> None:
        if self.ranker is not None:
            self.ranker.set_load(machine, self.state.load(machine))

    def _record(self, action: Action, unit: str, machine: str, reason: str) -> None:
        self.events.append(Decision(action, unit, machine, reason))

    # ------------------------------------------------------------------ 4. plan

    def _plan(self) -> Plan:
        state = self.state
        # a port released this round is free from the next: rerun when a unit (or a
        # global unit on some machine) was refused this time
        unplaceable = bool(self.failed or self.global_failed or self.global_refused)
        return Plan(
            decisions=net_decisions(self.events, self.snapshot.placements, state.placement),
            placements=dict(sorted(state.placement.items())),
            global_placements={
                name: frozenset(runs) for name, runs in sorted(state.global_runs.items())
            },
            unplaceable=dict(sorted({**self.failed, **self.global_failed}.items())),
            ports={name: {m: dict(got) for m, got in sorted(per_machine.items())}
                   for name, per_machine in sorted(state.ledger.allocations.items())},
            recheck=unplaceable and state.ledger.released(),
        )

def _no_machines() -> dict[str, str]:
    return {"": PlacementReason.NO_MACHINES.render()}
