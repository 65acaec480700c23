"""The plan -> writes diff (engine/commit.py), table-tested without a store."""

from __future__ import annotations

from unitctl.engine.commit import Group, pack, plan_groups
from unitctl.engine.view import EngineView, PlannedSchedule
from unitctl.model import DesiredState, ScheduleEntry, UnitRecord
from unitctl.registry import codec
from unitctl.registry.keys import Keys
from unitctl.registry.kv import Delete, Put, mod_is

K = Keys("/p/")
L = DesiredState.LAUNCHED
A = ScheduleEntry("a.service", "h", L)


def view(placements: dict[str, str], schedules: dict[str, dict[str, ScheduleEntry]],
         explanations: dict[str, dict[str, str]] | None = None) -> EngineView:
    return EngineView(1, {"a.service": UnitRecord("a.service", "h", L)}, {"a.service": 5},
                      placements, {n: 6 for n in placements}, schedules, {},
                      explanations or {})


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


def test_globals_and_explanations_are_unguarded_single_ops() -> None:
    v = view({}, {"m1": {"g.service": A}}, {"a.service": {"": "old"}})
    target = PlannedSchedule({}, {}, {"a.service": {"": "new"}})
    assert plan_groups(K, v, target) == [
        ([], [Delete(K.scheduled("m1", "g.service"))]),
        ([], [Put(K.explanation("a.service"), codec.encode_explanation({"": "new"}))])]


def test_pack_keeps_groups_whole_under_the_limit() -> None:
    groups: list[Group] = [([], [Delete(f"k{i}"), Delete(f"j{i}")]) for i in range(5)]
    batches = pack(groups, limit=5)
    assert [len(b) for b in batches] == [2, 2, 1]
    assert [g for b in batches for g in b] == groups
