"""unitctl.dependencies: the keys read, the ordering graph, cycles, and the gates."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from unitctl.dependencies import (
    Dependency,
    Placement,
    UnitDeps,
    cycle_problem,
    find_cycle,
    ordered_before,
    parse,
    requirement_lost,
    start_order,
    start_wait,
    stop_wait,
)
from unitctl.unitfile import UnitFile

NAMES = [f"u{i}.service" for i in range(6)]


def test_parse_accumulates_lists_expands_specifiers_and_ignores_empty() -> None:
    unit = UnitFile.parse("[Unit]\nAfter=a.service b.service\nAfter=\nAfter=db@%i.service\n"
                          "Before=z.service\nRequires=r.service\nBindsTo=b2.service\n"
                          "Wants=w.service\n[Service]\nAfter=ignored.service\n")
    deps = parse("web@eu.service", unit)
    assert deps.after == {"a.service", "b.service", "db@eu.service"}
    assert deps.before == {"z.service"}
    assert deps.requires == {"r.service", "b2.service"}
    assert deps.wants == {"w.service"}


def test_before_is_an_edge_into_the_named_unit() -> None:
    preds = ordered_before({"a.service": UnitDeps(before=frozenset({"b.service"}))})
    assert preds["b.service"] == {"a.service"}
    assert preds["a.service"] == frozenset()


def test_cycle_is_named() -> None:
    units = {"a.service": UnitDeps(after=frozenset({"b.service"})),
             "b.service": UnitDeps(after=frozenset({"a.service"}))}
    assert cycle_problem(units) == "dependency cycle: a.service -> b.service -> a.service"
    assert cycle_problem({"a.service": UnitDeps(after=frozenset({"b.service"}))}) is None


edges = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)), max_size=12)


def _graph(pairs: list[tuple[str, str]]) -> dict[str, frozenset[str]]:
    units: dict[str, set[str]] = {n: set() for n in NAMES}
    for before, after in pairs:
        if before != after:
            units[after].add(before)
    return ordered_before({n: UnitDeps(after=frozenset(p)) for n, p in units.items()})


def _brute_force_cyclic(preds: dict[str, frozenset[str]]) -> bool:
    """Acyclic iff some permutation respects every edge."""
    return not any(all(order.index(p) < order.index(n) for n in order for p in preds[n])
                   for order in itertools.permutations(NAMES))


@given(edges)
def test_cycle_detection_agrees_with_brute_force(pairs: list[tuple[str, str]]) -> None:
    preds = _graph(pairs)
    cycle = find_cycle(preds)
    assert (cycle is not None) == _brute_force_cyclic(preds)
    if cycle is not None:  # a real cycle: each ordered before the next
        assert cycle[0] == cycle[-1]
        assert all(a in preds[b] for a, b in itertools.pairwise(cycle))


@given(edges)
def test_start_order_respects_every_after_edge(pairs: list[tuple[str, str]]) -> None:
    preds = _graph(pairs)
    if find_cycle(preds) is not None:
        return
    order = start_order(NAMES, preds)
    assert sorted(order) == sorted(NAMES)
    assert all(order.index(p) < order.index(n) for n in order for p in preds[n])


def _dep(name: str, active: str | None, *, local: bool, to_run: bool = True) -> Dependency:
    states = () if active is None else (Placement("2c8e5b1f0000", active),)
    return Dependency(name, to_run, local, states)


def test_local_order_waits_for_the_dependency_to_be_active() -> None:
    deps = UnitDeps(after=frozenset({"mongo.service"}))
    pre = frozenset({"mongo.service"})
    assert start_wait(pre, deps, {"mongo.service": _dep("mongo.service", "activating",
                                                        local=True)}) == \
        "waiting for mongo.service, activating on 2c8e5b1f"
    assert start_wait(pre, deps, {"mongo.service": _dep("mongo.service", "active",
                                                        local=True)}) is None
    # not to run here: After= alone does not hold it (systemd: no job, no order)
    assert start_wait(pre, deps, {"mongo.service": _dep("mongo.service", "inactive",
                                                        local=True, to_run=False)}) is None
    # not a cluster unit: systemd decides
    assert start_wait(pre, deps, {}) is None


def test_local_requires_without_after_orders_nothing() -> None:
    deps = UnitDeps(requires=frozenset({"db.service"}))
    assert start_wait(frozenset(), deps, {"db.service": _dep("db.service", "inactive",
                                                             local=True)}) is None


def test_remote_dependencies_wait_and_a_lost_requirement_stops() -> None:
    deps = UnitDeps(after=frozenset({"db.service"}), requires=frozenset({"db.service"}))
    gone = {"db.service": _dep("db.service", None, local=False)}
    assert start_wait(frozenset(), deps, gone) == \
        "waiting for db.service, not running on any machine"
    assert requirement_lost(deps, gone) == "required db.service is not running on any machine"
    up = {"db.service": _dep("db.service", "active", local=False)}
    assert start_wait(frozenset(), deps, up) is None
    assert requirement_lost(deps, up) is None
    wants = UnitDeps(wants=frozenset({"db.service"}))
    assert requirement_lost(wants, gone) is None  # Wants= never stops it


def test_stop_waits_for_the_units_ordered_after() -> None:
    preds = {"employees.service": frozenset({"mongo.service"})}
    assert stop_wait("mongo.service", preds, {"employees.service": "deactivating"}) == \
        "waiting for employees.service to stop (deactivating)"
    assert stop_wait("mongo.service", preds, {"employees.service": "inactive"}) is None
    assert stop_wait("employees.service", preds, {"mongo.service": "active"}) is None
