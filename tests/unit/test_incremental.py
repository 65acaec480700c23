"""The incremental round gives the full round's plan (property tests).

From a random cluster settled by full rounds (a fixed point: what the engine
has once its writes landed), a random small change of units, then: the full
``schedule()`` over the changed snapshot and :meth:`Standing.place` over the
change must give equal plans (decisions in order, placements, global
placements, rejections with every reason, ports, recheck), twice in a row.
When the fast path declines, the change must be one it documents as outside it.
"""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.unit.test_scheduler_props import clusters, desired_states, requirements
from tests.unit.test_scheduler_resources import needs, workloads
from unitctl.glob import matches_glob
from unitctl.model import DesiredState, Requirements
from unitctl.record import replace
from unitctl.scheduler import ClusterSnapshot, Plan, UnitInfo, schedule
from unitctl.scheduler.incremental import schedule_keeping

NEW_NAMES = ["a.service", "b.service", "c.service", "db.service", "x.service", "web@1.service",
             "web@5.service", "web@6.service", "new.service", "u1.service", "u7.service",
             "u11.service", "u12.service"]


def settled(snap: ClusterSnapshot) -> ClusterSnapshot | None:
    """The snapshot after full rounds stopped changing anything (None: no fixed point)."""
    for _ in range(6):
        plan = schedule(snap)
        if not plan.decisions and not plan.recheck and dict(snap.placements) == dict(
                plan.placements) and snap.allocations == plan.ports:
            return snap
        snap = after(snap, plan, {})
    return None


def after(snap: ClusterSnapshot, plan: Plan, changed: Mapping[str, UnitInfo]) -> ClusterSnapshot:
    """The cluster once ``plan`` was committed, with ``changed`` units stored."""
    return ClusterSnapshot(dict(snap.machines), {**snap.units, **changed},
                           dict(plan.placements), allocations=plan.ports,
                           volume_pins=snap.volume_pins)


def outside_fast_path(snap: ClusterSnapshot, changed: Mapping[str, UnitInfo]) -> bool:
    """The documented cases the incremental round hands back to a full one."""
    replace_globs = [g for u in snap.units.values() if u.active and not u.req.is_global
                     for g in u.req.replaces]
    for name, unit in changed.items():
        old = snap.units.get(name)
        if (old is not None and old.active) or unit.req.is_global:
            return True
        if unit.active and (unit.req.replaces or any(matches_glob(g, name)
                                                      for g in replace_globs)):
            return True
    return False


def changes(reqs: st.SearchStrategy[Requirements]) -> st.SearchStrategy[dict[str, UnitInfo]]:
    unit = st.tuples(st.sampled_from(NEW_NAMES), desired_states, reqs)
    return st.lists(unit, min_size=1, max_size=3, unique_by=lambda t: t[0]).map(
        lambda found: {n: UnitInfo(n, "h2", d, r) for n, d, r in found})


rules_changes = changes(requirements)
resource_changes = changes(st.builds(Requirements, needs=needs))


def check_rounds(snap: ClusterSnapshot, steps: list[dict[str, UnitInfo]]) -> None:
    base = settled(snap)
    if base is None:
        event("no fixed point")
        return
    plan, standing = schedule_keeping(base)
    assert standing is not None, "a settled cluster leaves a standing state"
    assert plan == schedule(base)
    for changed in steps:
        before = base
        base = after(base, plan, changed)
        full = schedule(base)
        inc = standing.place(changed)
        if inc is None:
            assert not standing.usable or outside_fast_path(before, changed) or (
                standing.global_refused and any(u.req.needs.any for u in changed.values()))
            event("full round")
            return
        event("incremental round")
        assert inc.plan == full
        for name in set(base.units) - inc.affected:
            assert full.placements.get(name) == plan.placements.get(name)
            assert full.ports.get(name, {}) == plan.ports.get(name, {})
            assert full.unplaceable.get(name) == plan.unplaceable.get(name)
        plan = full


@settings(max_examples=200, deadline=None)
@given(clusters(), st.lists(rules_changes, min_size=1, max_size=3))
def test_incremental_round_equals_full_round_with_rules(
        snap: ClusterSnapshot, steps: list[dict[str, UnitInfo]]) -> None:
    check_rounds(snap, steps)


def without_replaces(snap: ClusterSnapshot) -> ClusterSnapshot:
    """``snap`` with every Replaces= dropped: most changes then take the fast path."""
    units = {n: UnitInfo(n, u.hash, u.desired, replace(u.req, replaces=()))
             for n, u in snap.units.items()}
    return ClusterSnapshot(snap.machines, units, snap.placements)


@settings(max_examples=200, deadline=None)
@given(clusters().map(without_replaces), st.lists(rules_changes, min_size=1, max_size=3))
def test_incremental_round_equals_full_round_without_replaces(
        snap: ClusterSnapshot, steps: list[dict[str, UnitInfo]]) -> None:
    check_rounds(snap, steps)


@settings(max_examples=150, deadline=None)
@given(workloads(), st.lists(resource_changes, min_size=1, max_size=3))
def test_incremental_round_equals_full_round_with_resources(
        snap: ClusterSnapshot, steps: list[dict[str, UnitInfo]]) -> None:
    check_rounds(snap, steps)


def test_a_new_unit_is_placed_without_a_full_round() -> None:
    from unitctl.model import Machine

    machines = {m: Machine(id=m) for m in ("a" * 32, "b" * 32)}
    units = {f"s{i}.service": UnitInfo(f"s{i}.service", "h", DesiredState.LAUNCHED,
                                       Requirements()) for i in range(3)}
    _plan, standing = schedule_keeping(ClusterSnapshot(machines, units, {}))
    assert standing is not None
    new = UnitInfo("t.service", "h", DesiredState.LAUNCHED, Requirements())
    inc = standing.place({"t.service": new})
    assert inc is not None and inc.affected == {"t.service"}
    assert inc.plan.placements["t.service"] == "b" * 32  # the less loaded machine
    assert [d.unit for d in inc.plan.decisions] == ["t.service"]


def test_a_change_to_an_active_unit_needs_a_full_round() -> None:
    from unitctl.model import Machine

    machines = {"a" * 32: Machine(id="a" * 32)}
    unit = UnitInfo("s.service", "h", DesiredState.LAUNCHED, Requirements())
    _, standing = schedule_keeping(ClusterSnapshot(machines, {"s.service": unit}, {}))
    assert standing is not None
    stopped = UnitInfo("s.service", "h", DesiredState.INACTIVE, Requirements())
    assert standing.place({"s.service": stopped}) is None
    assert standing.usable  # nothing was changed: later new units still take the fast path


def test_a_new_unit_stays_off_a_machine_whose_unit_conflicts_with_it() -> None:
    from unitctl.model import Machine

    machines = {m: Machine(id=m) for m in ("a" * 32, "b" * 32)}
    units = {"s.service": UnitInfo("s.service", "h", DesiredState.LAUNCHED,
                                   Requirements(conflicts=("web@*.service",))),
             "web@1.service": UnitInfo("web@1.service", "h", DesiredState.LAUNCHED,
                                       Requirements())}
    plan, standing = schedule_keeping(ClusterSnapshot(machines, units, {}))
    assert standing is not None
    new = UnitInfo("web@2.service", "h", DesiredState.LAUNCHED, Requirements())
    inc = standing.place({"web@2.service": new})
    assert inc is not None
    assert inc.plan.placements["web@2.service"] != plan.placements["s.service"]
