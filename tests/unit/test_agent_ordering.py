"""unitctl.agent.ordering.gate: which of the reconcile's tasks wait (pure)."""

from __future__ import annotations

from unitctl.agent.ordering import gate, local_dependencies, remote_dependency
from unitctl.agent.reconcile import DesiredUnit
from unitctl.agent.tasks import Task, TaskType
from unitctl.dependencies import NO_DEPS, UnitDeps
from unitctl.model import DesiredState, Requirements, UnitRecord, UnitState

ME = "a" * 32
THERE = "b" * 32
AFTER_MONGO = UnitDeps(after=frozenset({"mongo.service"}))


def _unit(name: str, desired: DesiredState, deps: UnitDeps = NO_DEPS) -> DesiredUnit:
    return DesiredUnit(name, "h", desired, Requirements(), deps)


def _start(*names: str) -> list[Task]:
    return [Task(TaskType.START, n, "") for n in names]


def test_dependant_start_waits_for_local_dependency_then_runs() -> None:
    desired = {"mongo.service": _unit("mongo.service", DesiredState.LAUNCHED),
               "employees.service": _unit("employees.service", DesiredState.LAUNCHED,
                                          AFTER_MONGO)}
    deps_of = {n: u.deps for n, u in desired.items()}
    for mongo, kept in (("inactive", ["mongo.service"]),
                        ("active", ["mongo.service", "employees.service"])):
        active = {"mongo.service": mongo, "employees.service": "inactive"}
        g = gate(_start("employees.service", "mongo.service"), desired, deps_of,
                 local_dependencies(ME, desired, active), active, frozenset())
        assert sorted(t.name for t in g.tasks) == sorted(kept)
    active = {"mongo.service": "activating", "employees.service": "inactive"}
    g = gate(_start("employees.service"), desired, deps_of,
             local_dependencies(ME, desired, active), active, frozenset())
    assert g.waiting == {"employees.service": "waiting for mongo.service, activating on aaaaaaaa"}
    assert g.wake_on == {"mongo.service"}


def test_stop_of_dependency_waits_for_the_dependant() -> None:
    desired = {"mongo.service": _unit("mongo.service", DesiredState.LOADED),
               "employees.service": _unit("employees.service", DesiredState.LOADED,
                                          AFTER_MONGO)}
    deps_of = {n: u.deps for n, u in desired.items()}
    active = {"mongo.service": "active", "employees.service": "deactivating"}
    stops = [Task(TaskType.STOP, "mongo.service", "")]
    g = gate(stops, desired, deps_of, {}, active, frozenset())
    assert g.tasks == [] and g.wake_on == {"employees.service"}
    active["employees.service"] = "inactive"
    assert gate(stops, desired, deps_of, {}, active, frozenset()).tasks == stops


def test_lost_remote_requirement_stops_the_running_dependant() -> None:
    deps = UnitDeps(after=frozenset({"db.service"}), requires=frozenset({"db.service"}))
    desired = {"app.service": _unit("app.service", DesiredState.LAUNCHED, deps)}
    record = UnitRecord("db.service", "h", DesiredState.LAUNCHED)
    gone = remote_dependency(ME, record, [])
    up = remote_dependency(ME, record, [UnitState("db.service", THERE, "loaded", "active",
                                                  "running", "h")])
    assert gone is not None and up is not None
    g = gate([], desired, {"app.service": deps}, {"db.service": gone}, {}, frozenset(
        {"app.service"}))
    assert [(t.type, t.name) for t in g.tasks] == [(TaskType.STOP, "app.service")]
    g = gate([], desired, {"app.service": deps}, {"db.service": up}, {}, frozenset(
        {"app.service"}))
    assert g.tasks == []
    assert remote_dependency(ME, None, []) is None  # not a cluster unit
