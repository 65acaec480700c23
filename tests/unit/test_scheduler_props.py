"""Property tests for the scheduler over generated clusters.

The rules are re-checked by a brute-force checker written here, independent of
the scheduler's indexes and caches: it looks at every pair of units on every
machine.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from unitctl.glob import matches_glob
from unitctl.model import DesiredState, Machine, Requirements
from unitctl.scheduler import Action, ClusterSnapshot, Plan, UnitInfo, schedule
from unitctl.xfleet import conflicts_between, replaces

MIDS = [c * 8 + "0" * 24 for c in "abcde"]
NAMES = [
    "a.service", "b.service", "c.service", "db.service", "x.service",
    "web@1.service", "web@2.service", "web@3.service", "web@4.service",
]
GLOBS = ["web@*.service", "a.service", "b.service", "*.service", "db*", "[ab].service",
         "web@?.service", "c.service", "x*"]
KEYS = ["region", "disk"]
VALUES = ["us", "eu", "ssd"]
T = TypeVar("T")


def sometimes(strategy: st.SearchStrategy[T], empty: T) -> st.SearchStrategy[T]:
    """Mostly ``empty``: real clusters have few rules per unit."""
    return st.one_of(st.just(empty), st.just(empty), strategy)


def globs() -> st.SearchStrategy[tuple[str, ...]]:
    return sometimes(st.lists(st.sampled_from(GLOBS), max_size=2, unique=True).map(tuple), ())


requirements = st.builds(
    Requirements,
    machine_id=sometimes(st.sampled_from([*MIDS, *(m[:8] for m in MIDS), "ffffffff"]), None),
    metadata=sometimes(
        st.dictionaries(st.sampled_from(KEYS),
                        st.frozensets(st.sampled_from(VALUES), min_size=1, max_size=2),
                        max_size=2),
        {}),
    machine_of=sometimes(st.lists(st.sampled_from(NAMES), max_size=2, unique=True).map(tuple), ()),
    conflicts=globs(),
    replaces=globs(),
    is_global=st.sampled_from([False, False, False, True]),
)
desired_states = st.sampled_from(
    [DesiredState.LAUNCHED, DesiredState.LAUNCHED, DesiredState.LOADED, DesiredState.INACTIVE])
machine_metadata = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)


@st.composite
def clusters(draw: st.DrawFn) -> ClusterSnapshot:
    """Up to 4 machines, up to 9 units with random rules, random (partly stale) placements."""
    mids = draw(st.lists(st.sampled_from(MIDS), max_size=4, unique=True))
    machines = {m: Machine(id=m, metadata=draw(machine_metadata)) for m in mids}
    names = draw(st.lists(st.sampled_from(NAMES), max_size=len(NAMES), unique=True))
    units = {n: UnitInfo(n, "h", draw(desired_states), draw(requirements)) for n in names}
    placed = draw(st.lists(st.sampled_from([*names, "ghost.service"]), unique=True))
    placements = {n: draw(st.sampled_from(MIDS)) for n in placed}
    return ClusterSnapshot(machines=machines, units=units, placements=placements)


# ------------------------------------------------------------ brute-force checker


def effective_replaces(units: Mapping[str, UnitInfo], a: str, b: str) -> bool:
    """fleet's Replaces between placeable units, minus longer replace cycles."""
    placeable = {n for n, u in units.items() if u.active and not u.req.is_global}
    if a not in placeable or b not in placeable:
        return False

    def edge(x: str, y: str) -> bool:
        return replaces(x, units[x].req, y, units[y].req)

    if not edge(a, b):
        return False
    seen, todo = {b}, [b]
    while todo:
        x = todo.pop()
        for y in placeable - seen:
            if edge(x, y):
                if y == a:
                    return False
                seen.add(y)
                todo.append(y)
    return True


def replace_cycles(units: Mapping[str, UnitInfo]) -> list[set[str]]:
    """Sets of placeable units whose Replaces globs reach each other (brute force)."""
    placeable = sorted(n for n, u in units.items() if u.active and not u.req.is_global)

    def matches(x: str, y: str) -> bool:
        return x != y and any(matches_glob(g, y) for g in units[x].req.replaces)

    reach = {x: {y for y in placeable if matches(x, y)} for x in placeable}
    for k in placeable:  # transitive closure (Floyd-Warshall)
        for x in placeable:
            if k in reach[x]:
                reach[x] |= reach[k]
    groups = {frozenset({x} | {y for y in reach[x] if x in reach[y]}) for x in placeable}
    return [set(g) for g in groups if len(g) > 1]


def metadata_ok(req: Requirements, machine: Machine) -> bool:
    return all(machine.metadata.get(k) in v for k, v in req.metadata.items())


def expected_globals(snap: ClusterSnapshot) -> dict[str, frozenset[str]]:
    """fleet's agent rule: in name order, metadata matches and no conflict with the
    global units accepted before on that machine."""
    accepted: dict[str, list[str]] = defaultdict(list)
    result: dict[str, frozenset[str]] = {}
    for name in sorted(snap.units):
        u = snap.units[name]
        if not (u.active and u.req.is_global):
            continue
        runs = set()
        for mid, machine in snap.machines.items():
            clash = any(conflicts_between(name, u.req, o, snap.units[o].req)
                        for o in accepted[mid])
            if metadata_ok(u.req, machine) and not clash:
                accepted[mid].append(name)
                runs.add(mid)
        result[name] = frozenset(runs)
    return result


def violations(snap: ClusterSnapshot, plan: Plan) -> list[str]:
    units, machines = snap.units, snap.machines
    found: list[str] = []
    on: dict[str, set[str]] = defaultdict(set)
    for name, mid in plan.placements.items():
        u = units[name]
        if not u.active or u.req.is_global or mid not in machines:
            found.append(f"{name} must not be placed on {mid}")
        on[mid].add(name)
    if plan.global_placements != expected_globals(snap):
        found.append(f"globals {plan.global_placements} != {expected_globals(snap)}")
    for cycle in replace_cycles(units):
        placed = cycle & set(plan.placements)
        if placed - {min(cycle)}:
            found.append(f"replace cycle {sorted(cycle)}: {sorted(placed)} placed, "
                         f"only {min(cycle)} may be")
    for mid, gs in ((m, g) for g, ms in plan.global_placements.items() for m in ms):
        on[mid].add(gs)
    for mid, here in on.items():
        machine = machines[mid]
        for name in here:
            u = units[name]
            if not metadata_ok(u.req, machine):
                found.append(f"{name} on {mid}: metadata")
            if not u.req.is_global:
                wanted = u.req.machine_id
                if wanted is not None and wanted not in (mid, mid[:8]):
                    found.append(f"{name} on {mid}: MachineID")
                found += [f"{name} on {mid}: peer {p} missing"
                          for p in u.req.machine_of if p != name and p not in here]
            for other in here:
                if conflicts_between(name, u.req, other, units[other].req):
                    found.append(f"{name} and {other} conflict on {mid}")
                if effective_replaces(units, other, name):
                    found.append(f"{other} replaces {name} on {mid}")
    return found


def missing_reasons(snap: ClusterSnapshot, plan: Plan) -> list[str]:
    """Every active unit that runs nowhere has a reason for every live machine."""
    keys = set(snap.machines) or {""}
    found = []
    for name, u in snap.units.items():
        runs = plan.global_placements.get(name) if u.req.is_global else plan.placements.get(name)
        if u.active and not runs:
            reasons = plan.unplaceable.get(name, {})
            if set(reasons) != keys or not all(reasons.values()):
                found.append(f"{name}: reasons for {sorted(reasons)}, machines {sorted(keys)}")
        elif name in plan.unplaceable:
            found.append(f"{name} is placed or inactive but listed as unplaceable")
    return found


def applied(snap: ClusterSnapshot, plan: Plan) -> dict[str, str]:
    placements = dict(snap.placements)
    for d in plan.decisions:
        if d.action is Action.UNSCHEDULE:
            assert placements.pop(d.unit) == d.machine
        else:
            assert d.unit not in placements
            placements[d.unit] = d.machine
    return placements


# --------------------------------------------------------------------- properties


@settings(max_examples=400, deadline=None)
@given(clusters())
def test_no_placement_violates_a_rule(snap: ClusterSnapshot) -> None:
    plan = schedule(snap)
    assert violations(snap, plan) == []
    assert missing_reasons(snap, plan) == []
    assert applied(snap, plan) == dict(plan.placements)


@settings(max_examples=400, deadline=None)
@given(clusters())
def test_idempotent(snap: ClusterSnapshot) -> None:
    plan = schedule(snap)
    after = ClusterSnapshot(snap.machines, snap.units, applied(snap, plan))
    again = schedule(after)
    assert again.decisions == ()
    assert again.placements == plan.placements
    assert again.global_placements == plan.global_placements
    # the same units stay unplaceable (a reason may name another blocker now)
    assert {u: set(r) for u, r in again.unplaceable.items()} == {
        u: set(r) for u, r in plan.unplaceable.items()}


def shuffled(snap: ClusterSnapshot, rng: random.Random) -> ClusterSnapshot:
    def mix(mapping: Mapping[str, object]) -> list[tuple[str, object]]:
        items = list(mapping.items())
        rng.shuffle(items)
        return items

    return ClusterSnapshot(
        machines=dict(mix(snap.machines)),  # type: ignore[arg-type]
        units=dict(mix(snap.units)),  # type: ignore[arg-type]
        placements=dict(mix(snap.placements)),  # type: ignore[arg-type]
    )


@settings(max_examples=300, deadline=None)
@given(clusters(), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_insertion_order(
    snap: ClusterSnapshot, rng: random.Random,
) -> None:
    plan = schedule(snap)
    other = schedule(shuffled(snap, rng))
    assert other == plan
    assert list(other.placements.items()) == list(plan.placements.items())
    assert list(other.unplaceable.items()) == list(plan.unplaceable.items())


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_every_unplaceable_unit_has_a_reason_for_every_machine(snap: ClusterSnapshot) -> None:
    plan = schedule(snap)
    assert missing_reasons(snap, plan) == []


@st.composite
def replace_rings(draw: st.DrawFn) -> ClusterSnapshot:
    """2-4 units whose Replaces name the next one round a ring (names or globs),
    at least one machine, random stale placements."""
    mids = draw(st.lists(st.sampled_from(MIDS), min_size=1, max_size=4, unique=True))
    ring = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=4, unique=True))
    units = {}
    for i, name in enumerate(ring):
        target = ring[(i + 1) % len(ring)]
        pattern = draw(st.sampled_from([target, target[:-3] + "*", "*" + target[1:]]))
        units[name] = UnitInfo(name, "h", DesiredState.LAUNCHED, Requirements(replaces=(pattern,)))
    placed = draw(st.lists(st.sampled_from(ring), unique=True))
    placements = {n: draw(st.sampled_from(mids)) for n in placed}
    return ClusterSnapshot({m: Machine(id=m) for m in mids}, units, placements)


@settings(max_examples=300, deadline=None)
@given(replace_rings())
def test_a_replace_cycle_never_runs_two(snap: ClusterSnapshot) -> None:
    """Exactly one unit of a Replaces cycle is placed, the first name, in one round."""
    plan = schedule(snap)
    assert set(plan.placements) & set(snap.units) == {min(snap.units)}
    after = ClusterSnapshot(snap.machines, snap.units, applied(snap, plan))
    assert schedule(after).decisions == ()
