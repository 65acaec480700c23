"""The plan -> writes diff (engine/commit.py), table-tested without a store."""

from __future__ import annotations

import pytest

from unitctl.engine.commit import MAX_TXN_OPS, Group, pack, plan_groups
from unitctl.engine.view import EngineView, PlannedSchedule
from unitctl.model import DesiredState, Machine, ScheduleEntry, UnitRecord
from unitctl.registry import codec
from unitctl.registry.keys import Keys
from unitctl.registry.kv import Compare, Delete, Put, mod_is

K = Keys("/p/")
L = DesiredState.LAUNCHED
A = ScheduleEntry("a.service", "h", L)


G = ScheduleEntry("g.service", "h", L)


def view(placements: dict[str, str], schedules: dict[str, dict[str, ScheduleEntry]],
         explanations: dict[str, dict[str, str]] | None = None,
         machines: tuple[str, ...] = ("m1", "m2", "m3"),
         units: tuple[str, ...] = ("a.service",)) -> EngineView:
    """A view of ``units`` (unit revision 5, placement revision 6) on live ``machines``."""
    return EngineView(1, {n: UnitRecord(n, "h", L) for n in units}, {n: 5 for n in units},
                      placements, {n: 6 for n in placements}, schedules,
                      {m: Machine(m) for m in machines}, explanations or {})


def unit_is(name: str, rev: int) -> Compare:
    return mod_is(K.unit(name), rev)


def gone(machine: str) -> Compare:
    """The machine key is still absent."""
    return mod_is(K.machine(machine), 0)


def test_no_change_no_groups() -> None:
    v = view({"a.service": "m1"}, {"m1": {"a.service": A}})
    assert plan_groups(K, v, PlannedSchedule({"a.service": "m1"}, {"m1": {"a.service": A}})) == []


def test_a_move_is_one_group_guarded_by_the_unit_revisions() -> None:
    v = view({"a.service": "m1"}, {"m1": {"a.service": A}})
    groups = plan_groups(K, v, PlannedSchedule({"a.service": "m2"}, {"m2": {"a.service": A}}))
    assert groups == [([mod_is(K.placement("a.service"), 6), mod_is(K.unit("a.service"), 5)],
                       [Put(K.placement("a.service"), b"m2"),
                        Delete(K.scheduled("m1", "a.service")),
                        Put(K.scheduled("m2", "a.service"), codec.encode_entry(A))])]


def test_a_move_off_a_machine_seen_gone_is_guarded_by_its_absence() -> None:
    """Defect 8: the round saw m1 gone; if m1 registers again before the commit
    (and restarts the unit), the move must not land."""
    v = view({"a.service": "m1"}, {"m1": {"a.service": A}}, machines=("m2",))
    groups = plan_groups(K, v, PlannedSchedule({"a.service": "m2"}, {"m2": {"a.service": A}}))
    assert groups == [([mod_is(K.placement("a.service"), 6), unit_is("a.service", 5), gone("m1")],
                       [Put(K.placement("a.service"), b"m2"),
                        Delete(K.scheduled("m1", "a.service")),
                        Put(K.scheduled("m2", "a.service"), codec.encode_entry(A))])]


@pytest.mark.parametrize(("case", "v", "planned", "compares"), [
    ("destroyed, placed on a machine seen gone",
     view({"a.service": "m1"}, {"m1": {"a.service": A}}, machines=(), units=()),
     PlannedSchedule({}, {}),
     [mod_is(K.placement("a.service"), 6), unit_is("a.service", 0), gone("m1")]),
    ("unscheduled from a live machine",
     view({"a.service": "m1"}, {"m1": {"a.service": A}}),
     PlannedSchedule({}, {}),
     [mod_is(K.placement("a.service"), 6), unit_is("a.service", 5)]),
    ("a stray entry on a gone machine, placed on a live one",
     view({"a.service": "m2"}, {"m2": {"a.service": A}, "m9": {"a.service": A}}),
     PlannedSchedule({"a.service": "m2"}, {"m2": {"a.service": A}}),
     [mod_is(K.placement("a.service"), 6), unit_is("a.service", 5), gone("m9")]),
    ("a first placement",
     view({}, {}),
     PlannedSchedule({"a.service": "m1"}, {"m1": {"a.service": A}}),
     [mod_is(K.placement("a.service"), 0), unit_is("a.service", 5)]),
])
def test_placed_unit_guards(case: str, v: EngineView, planned: PlannedSchedule,
                            compares: list[Compare]) -> None:
    (group,) = plan_groups(K, v, planned)
    assert group[0] == compares, case


def test_global_schedule_ops_are_guarded_by_the_unit_revision() -> None:
    """Defect 8: a stale round must not rewrite a just-stopped or destroyed global unit."""
    v = view({}, {"m3": {"g.service": G}}, machines=("m1", "m2"), units=("g.service",))
    planned = PlannedSchedule({}, {"m1": {"g.service": G}, "m2": {"g.service": G}})
    assert plan_groups(K, v, planned) == [
        ([unit_is("g.service", 5), gone("m3")],
         [Put(K.scheduled("m1", "g.service"), codec.encode_entry(G)),
          Put(K.scheduled("m2", "g.service"), codec.encode_entry(G)),
          Delete(K.scheduled("m3", "g.service"))])]


def test_leftover_entries_are_guarded_by_the_unit_staying_absent() -> None:
    v = view({}, {"m1": {"g.service": A}}, {"a.service": {"": "old"}})
    target = PlannedSchedule({}, {}, {"a.service": {"": "new"}})
    assert plan_groups(K, v, target) == [
        ([unit_is("g.service", 0)], [Delete(K.scheduled("m1", "g.service"))]),
        ([], [Put(K.explanation("a.service"), codec.encode_explanation({"": "new"}))])]


def test_a_global_unit_on_many_machines_is_split_into_guarded_groups() -> None:
    machines = tuple(f"m{i:03}" for i in range(300))
    v = view({}, {m: {"g.service": G} for m in machines[:100]}, machines=machines[100:],
             units=("g.service",))
    planned = PlannedSchedule({}, {m: {"g.service": G} for m in machines[100:]})
    groups = plan_groups(K, v, planned)
    assert sum(len(ops) for _c, ops in groups) == 300
    for compares, ops in groups:
        assert compares[0] == unit_is("g.service", 5)
        assert len(compares) + len(ops) <= MAX_TXN_OPS
        deleted = {op.key for op in ops if isinstance(op, Delete)}
        assert {c.key for c in compares[1:]} == {
            K.machine(k.split("/")[-2]) for k in deleted}  # every machine left, still gone


def test_pack_keeps_groups_whole_under_the_limit() -> None:
    groups: list[Group] = [([], [Delete(f"k{i}"), Delete(f"j{i}")]) for i in range(5)]
    batches = pack(groups, limit=5)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert [g for b in batches for g in b] == groups


def test_pack_counts_compares_and_ops_each_against_the_limit() -> None:
    """etcd bounds a transaction's compares and its ops separately: 5 guarded
    puts (5 compares, 5 ops) fit a limit of 5; a sixth starts a new batch."""
    groups: list[Group] = [([unit_is(f"u{i}", 0)], [Delete(f"k{i}")]) for i in range(6)]
    assert [len(b) for b in pack(groups, limit=5)] == [5, 1]
    lopsided: list[Group] = [([unit_is(f"u{i}", 0), unit_is(f"v{i}", 0)], [Delete(f"k{i}")])
                             for i in range(3)]
    assert [len(b) for b in pack(lopsided, limit=5)] == [2, 1]  # 4 compares, then 6 > 5
