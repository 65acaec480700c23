"""Table tests for the pure scheduler, one group per rule."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from unitctl.model import DesiredState, Machine, Requirements
from unitctl.scheduler import (
    Action,
    ClusterSnapshot,
    Decision,
    PlacementReason,
    Plan,
    UnitInfo,
    schedule,
)

M1, M2, M3 = ("1" * 8 + "0" * 24, "2" * 8 + "0" * 24, "3" * 8 + "0" * 24)
LAUNCHED, INACTIVE = DesiredState.LAUNCHED, DesiredState.INACTIVE


def machine(mid: str, **metadata: str) -> Machine:
    return Machine(id=mid, metadata=metadata)


def unit(name: str, desired: DesiredState = LAUNCHED, **rules: object) -> UnitInfo:
    metadata = rules.pop("metadata", {})
    assert isinstance(metadata, dict)
    req = Requirements(metadata={k: frozenset(v) for k, v in metadata.items()}, **rules)  # type: ignore[arg-type]
    return UnitInfo(name=name, hash="h-" + name, desired=desired, req=req)


def snap(
    machines: list[Machine], units: list[UnitInfo], placements: Mapping[str, str] | None = None,
) -> ClusterSnapshot:
    return ClusterSnapshot(
        machines={m.id: m for m in machines},
        units={u.name: u for u in units},
        placements=dict(placements or {}),
    )


def again(before: ClusterSnapshot, plan: Plan) -> ClusterSnapshot:
    """The snapshot after the engine applied ``plan``."""
    return ClusterSnapshot(before.machines, before.units, plan.placements)


def actions(plan: Plan) -> list[tuple[Action, str, str]]:
    return [(d.action, d.unit, d.machine) for d in plan.decisions]


def decision(plan: Plan, name: str, action: Action) -> Decision:
    return next(d for d in plan.decisions if d.unit == name and d.action is action)


THREE = [machine(M1), machine(M2), machine(M3)]


# ------------------------------------------------------------------ MachineID


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [(M2, M2), (M2[:8], M2), (M3[:8], M3), (M1, M1)],
    ids=["full", "short", "short-other", "full-first"],
)
def test_machine_id_pins_the_unit(wanted: str, expected: str) -> None:
    plan = schedule(snap(THREE, [unit("a.service", machine_id=wanted)]))
    assert plan.placements == {"a.service": expected}
    assert decision(plan, "a.service", Action.SCHEDULE).reason == f"pinned by MachineID={wanted}"


@pytest.mark.parametrize("wanted", ["deadbeef", "d" * 32])
def test_machine_id_of_absent_machine_is_unplaceable(wanted: str) -> None:
    plan = schedule(snap(THREE, [unit("a.service", machine_id=wanted)]))
    assert plan.placements == {}
    assert plan.unplaceable["a.service"] == dict.fromkeys(
        (M1, M2, M3), f"MachineID={wanted} is another machine")


def test_pinned_unit_stays_unscheduled_when_its_machine_dies() -> None:
    plan = schedule(snap(THREE[1:], [unit("a.service", machine_id=M1)], {"a.service": M1}))
    assert actions(plan) == [(Action.UNSCHEDULE, "a.service", M1)]
    assert plan.decisions[0].reason == f"machine {M1} went away"
    assert set(plan.unplaceable["a.service"]) == {M2, M3}


# ------------------------------------------------------------------- metadata

META_MACHINES = [
    machine(M1, region="us", disk="ssd"),
    machine(M2, region="eu", disk="hdd"),
    machine(M3, region="eu", disk="ssd"),
]


@pytest.mark.parametrize(
    ("required", "expected"),
    [
        ({"region": {"us"}}, M1),
        ({"region": {"eu"}}, M2),
        ({"region": {"eu"}, "disk": {"ssd"}}, M3),  # AND across keys
        ({"region": {"ap", "eu"}, "disk": {"ssd"}}, M3),  # OR within a key
        ({"region": {"us", "eu"}, "disk": {"hdd"}}, M2),
        ({"region": {"ap"}}, None),
        ({"rack": {"r1"}}, None),
    ],
)
def test_metadata_and_across_keys_or_within(
    required: dict[str, set[str]], expected: str | None,
) -> None:
    plan = schedule(snap(META_MACHINES, [unit("a.service", metadata=required)]))
    assert plan.placements.get("a.service") == expected
    assert ("a.service" in plan.unplaceable) == (expected is None)


def test_metadata_reason_names_key_and_values() -> None:
    plan = schedule(snap(META_MACHINES, [unit("a.service", metadata={"region": {"eu"}})]))
    plan2 = schedule(snap(META_MACHINES, [unit("b.service", metadata={"rack": {"r1", "r2"}})]))
    assert plan.placements == {"a.service": M2}
    assert plan2.unplaceable["b.service"][M1] == (
        "metadata rack=r1 or rack=r2 required, machine has no rack")
    one = schedule(snap(META_MACHINES[:1], [unit("a.service", metadata={"region": {"eu"}})]))
    assert one.unplaceable["a.service"] == {
        M1: "metadata region=eu required, machine has region=us"}


def test_metadata_change_moves_the_unit() -> None:
    machines = [machine(M1, region="us"), machine(M2, region="eu")]
    plan = schedule(snap(machines, [unit("a.service", metadata={"region": {"eu"}})],
                         {"a.service": M1}))
    assert actions(plan) == [(Action.UNSCHEDULE, "a.service", M1),
                             (Action.SCHEDULE, "a.service", M2)]
    assert plan.decisions[0].reason == (
        "rules no longer hold: metadata region=eu required, machine has region=us")


# ------------------------------------------------------------------ MachineOf


def test_follower_goes_where_its_leader_is() -> None:
    units = [unit("app.service"), unit("side.service", machine_of=("app.service",))]
    plan = schedule(snap(THREE, units, {"app.service": M3}))
    assert plan.placements == {"app.service": M3, "side.service": M3}
    assert plan.decisions == (Decision(Action.SCHEDULE, "side.service", M3,
                                       "follows its MachineOf peer app.service"),)


def test_follower_is_placed_after_its_leader_in_the_same_round() -> None:
    # "a-side" sorts before "b-leader" but must wait for it.
    units = [unit("a-side.service", machine_of=("b-leader.service",)), unit("b-leader.service")]
    plan = schedule(snap(THREE, units))
    assert plan.placements["a-side.service"] == plan.placements["b-leader.service"]
    assert [d.unit for d in plan.decisions] == ["b-leader.service", "a-side.service"]


def test_follower_unplaceable_until_leader_placed() -> None:
    units = [unit("app.service", INACTIVE), unit("side.service", machine_of=("app.service",))]
    plan = schedule(snap(THREE, units))
    assert plan.placements == {}
    assert plan.unplaceable["side.service"] == dict.fromkeys(
        (M1, M2, M3), "MachineOf peer app.service is not placed anywhere")
    units[0] = unit("app.service")
    plan = schedule(again(snap(THREE, units), plan))
    assert plan.placements["side.service"] == plan.placements["app.service"]


def test_follower_with_peers_on_different_machines_is_unplaceable() -> None:
    units = [unit("a.service"), unit("b.service"),
             unit("f.service", machine_of=("a.service", "b.service"))]
    plan = schedule(snap(THREE, units, {"a.service": M1, "b.service": M2}))
    assert plan.unplaceable["f.service"] == {
        M1: f"MachineOf peer b.service is not scheduled here (it is on {M2})",
        M2: f"MachineOf peer a.service is not scheduled here (it is on {M1})",
        M3: f"MachineOf peer a.service is not scheduled here (it is on {M1})",
    }


def test_followers_move_with_leader_when_its_machine_dies() -> None:
    units = [unit("app.service"), unit("side.service", machine_of=("app.service",)),
             unit("z.service", machine_of=("side.service",))]
    placed = {"app.service": M1, "side.service": M1, "z.service": M1}
    plan = schedule(snap(THREE[1:], units, placed))
    target = plan.placements["app.service"]
    assert target in {M2, M3}
    assert plan.placements == dict.fromkeys(placed, target)
    assert [d.reason for d in plan.decisions if d.action is Action.UNSCHEDULE] == [
        f"machine {M1} went away"] * 3


def test_followers_move_with_leader_that_is_rescheduled() -> None:
    machines = [machine(M1, region="us"), machine(M2, region="eu")]
    units = [unit("app.service", metadata={"region": {"eu"}}),
             unit("side.service", machine_of=("app.service",))]
    plan = schedule(snap(machines, units, {"app.service": M1, "side.service": M1}))
    assert plan.placements == {"app.service": M2, "side.service": M2}
    side = decision(plan, "side.service", Action.UNSCHEDULE)
    assert side.reason == "follows app.service which moved"
    assert decision(plan, "side.service", Action.SCHEDULE).machine == M2


def test_machine_of_cycle_is_unplaceable_with_the_cycle_named() -> None:
    units = [unit("a.service", machine_of=("b.service",)),
             unit("b.service", machine_of=("a.service",)),
             unit("c.service", machine_of=("a.service",))]
    plan = schedule(snap(THREE, units))
    assert plan.placements == {}
    cycle = "MachineOf cycle: {} -> {} -> {}"
    assert plan.unplaceable["a.service"][M1] == cycle.format("a.service", "b.service", "a.service")
    assert plan.unplaceable["b.service"][M2] == cycle.format("b.service", "a.service", "b.service")
    assert plan.unplaceable["c.service"][M3] == "MachineOf peer a.service is not placed anywhere"


# ------------------------------------------------------------------ Conflicts


@pytest.mark.parametrize(
    ("a_conflicts", "b_conflicts", "rule"),
    [
        (("b.service",), (), "a.service has Conflicts=b.service"),
        ((), ("a.service",), "Conflicts=a.service"),
        (("b*",), (), "a.service has Conflicts=b*"),
        ((), ("?.service",), "Conflicts=?.service"),
        (("x.service", "[bc].service"), (), "a.service has Conflicts=[bc].service"),
    ],
    ids=["forward", "backward", "glob-forward", "glob-backward", "second-glob"],
)
def test_conflicts_both_directions_and_globs(
    a_conflicts: tuple[str, ...], b_conflicts: tuple[str, ...], rule: str,
) -> None:
    units = [unit("a.service", conflicts=a_conflicts), unit("b.service", conflicts=b_conflicts)]
    plan = schedule(snap(THREE[:1], units))
    assert plan.placements == {"a.service": M1}
    assert plan.unplaceable["b.service"] == {M1: f"conflicts with a.service already there ({rule})"}
    spread = schedule(snap(THREE[:2], units))
    assert set(spread.placements.values()) == {M1, M2}


def test_five_conflicting_units_on_three_machines() -> None:
    units = [unit(f"web@{i}.service", conflicts=("web@*.service",)) for i in range(1, 6)]
    plan = schedule(snap(THREE, units))
    assert sorted(plan.placements.values()) == [M1, M2, M3]
    assert sorted(plan.unplaceable) == ["web@4.service", "web@5.service"]
    for name in ("web@4.service", "web@5.service"):
        reasons = plan.unplaceable[name]
        assert set(reasons) == {M1, M2, M3}
        for mid, reason in reasons.items():
            there = next(u for u, m in plan.placements.items() if m == mid)
            assert reason == f"conflicts with {there} already there (Conflicts=web@*.service)"


def test_placed_conflicting_units_keep_the_alphabetically_first() -> None:
    units = [unit("b.service", conflicts=("a.service",)), unit("a.service")]
    plan = schedule(snap(THREE[:1], units, {"a.service": M1, "b.service": M1}))
    assert actions(plan) == [(Action.UNSCHEDULE, "b.service", M1)]
    assert plan.decisions[0].reason == (
        "rules no longer hold: conflicts with a.service already there (Conflicts=a.service)")


def test_conflict_with_global_unit_on_the_machine() -> None:
    units = [unit("agent.service", is_global=True, conflicts=("db*",)), unit("db.service")]
    plan = schedule(snap(THREE[:1], units))
    assert plan.unplaceable["db.service"] == {
        M1: "conflicts with global unit agent.service there "
            "(agent.service has Conflicts=db*)"}


# --------------------------------------------------------------------- Global


def test_global_unit_runs_on_every_matching_machine() -> None:
    units = [unit("g.service", is_global=True, metadata={"region": {"eu"}}),
             unit("all.service", is_global=True)]
    plan = schedule(snap(META_MACHINES, units))
    assert plan.global_placements == {"all.service": frozenset({M1, M2, M3}),
                                      "g.service": frozenset({M2, M3})}
    assert plan.decisions == ()
    assert plan.placements == {}


def test_global_units_count_toward_load() -> None:
    units = [unit("g.service", is_global=True, metadata={"region": {"eu"}}), unit("a.service")]
    plan = schedule(snap(META_MACHINES, units))
    assert plan.placements == {"a.service": M1}


@pytest.mark.parametrize(
    ("names", "winner"),
    [(("a.service", "b.service"), "a.service"), (("z.service", "m.service"), "m.service")],
)
def test_conflicting_global_units_alphabetical_winner(
    names: tuple[str, str], winner: str,
) -> None:
    first, second = names
    units = [unit(first, is_global=True, conflicts=(second,)),
             unit(second, is_global=True)]
    plan = schedule(snap(THREE, units))
    loser = second if winner == first else first
    assert plan.global_placements == {winner: frozenset({M1, M2, M3}), loser: frozenset()}
    assert set(plan.unplaceable[loser]) == {M1, M2, M3}
    assert plan.unplaceable[loser][M1].startswith(f"conflicts with global unit {winner} there")


def test_inactive_global_unit_runs_nowhere_and_placed_global_is_unscheduled() -> None:
    units = [unit("g.service", INACTIVE, is_global=True), unit("h.service", is_global=True)]
    plan = schedule(snap(THREE, units, {"h.service": M1}))
    assert plan.global_placements == {"h.service": frozenset({M1, M2, M3})}
    assert plan.decisions == (Decision(Action.UNSCHEDULE, "h.service", M1,
                                       PlacementReason.GLOBAL_PLACED.render()),)
    assert plan.unplaceable == {}


# ------------------------------------------------------------------- Replaces


def test_replaces_moves_the_replaced_unit() -> None:
    units = [unit("new.service", replaces=("old.service",)), unit("old.service")]
    plan = schedule(snap(THREE[:2], units, {"new.service": M1, "old.service": M1}))
    assert plan.placements == {"new.service": M1, "old.service": M2}
    assert plan.decisions == (
        Decision(Action.UNSCHEDULE, "old.service", M1,
                 "replaced by new.service (Replaces=old.service)"),
        Decision(Action.SCHEDULE, "old.service", M2,
                 "least loaded machine that passes every rule (0 units)"),
    )


def test_replacer_placed_onto_the_replaced_units_machine_evicts_it() -> None:
    machines = [machine(M1, role="web"), machine(M2)]
    units = [unit("new.service", replaces=("old.*",), metadata={"role": {"web"}}),
             unit("old.service"), unit("old-side.service", machine_of=("old.service",))]
    plan = schedule(snap(machines, units, {"old.service": M1, "old-side.service": M1}))
    assert plan.placements == {"new.service": M1, "old.service": M2, "old-side.service": M2}
    assert decision(plan, "old.service", Action.UNSCHEDULE).reason == (
        "replaced by new.service (Replaces=old.*)")
    assert decision(plan, "old-side.service", Action.UNSCHEDULE).reason == (
        "follows old.service which moved")


def test_replaced_unit_is_never_placed_next_to_its_replacer() -> None:
    units = [unit("new.service", replaces=("old.service",)), unit("old.service")]
    plan = schedule(snap(THREE[:1], units, {"new.service": M1}))
    assert plan.unplaceable["old.service"] == {
        M1: "would be replaced by new.service already there (Replaces=old.service)"}


def test_replaced_unit_constraints_are_checked_when_it_moves() -> None:
    machines = [machine(M1, region="eu"), machine(M2, region="us"), machine(M3, region="eu")]
    units = [unit("new.service", replaces=("old.service",)),
             unit("old.service", metadata={"region": {"eu"}})]
    plan = schedule(snap(machines, units, {"new.service": M1, "old.service": M1}))
    assert plan.placements == {"new.service": M1, "old.service": M3}


def test_circular_replaces_runs_only_the_first_name() -> None:
    """Issue 11 item 3: fleet ignored a circular Replaces and ran both."""
    units = [unit("a.service", replaces=("b.service",)), unit("b.service", replaces=("a.service",))]
    plan = schedule(snap(THREE, units, {"a.service": M1, "b.service": M2}))
    assert plan.placements == {"a.service": M1}
    reason = ("circular Replaces (b.service -> a.service -> b.service): only a.service, "
              "the first name of the cycle, is scheduled")
    assert plan.decisions == (Decision(Action.UNSCHEDULE, "b.service", M2, reason),)
    assert plan.unplaceable["b.service"] == dict.fromkeys((M1, M2, M3), reason)
    assert schedule(again(snap(THREE, units), plan)).decisions == ()


def test_replace_cycle_through_globs_holds_all_but_the_first() -> None:
    units = [unit("a.service", replaces=("b*",)), unit("b1.service", replaces=("c.*",)),
             unit("c.service", replaces=("[ab].service",)), unit("d.service")]
    plan = schedule(snap(THREE, units))
    assert set(plan.placements) == {"a.service", "d.service"}
    assert plan.unplaceable["c.service"][M1].startswith(
        "circular Replaces (c.service -> a.service -> b1.service -> c.service)")


def test_the_first_name_runs_once_the_others_stop() -> None:
    units = [unit("a.service", INACTIVE, replaces=("b.service",)),
             unit("b.service", replaces=("a.service",))]
    assert schedule(snap(THREE, units)).placements == {"b.service": M1}


def test_replaces_is_deterministic_whatever_the_input_order() -> None:
    units = [unit("new.service", replaces=("old@*",))] + [unit(f"old@{i}") for i in range(4)]
    placed = {"new.service": M1, "old@0": M1, "old@1": M1, "old@2": M2, "old@3": M3}
    plans = {
        schedule(ClusterSnapshot(
            machines={m.id: m for m in (THREE if flip else THREE[::-1])},
            units={u.name: u for u in (units if flip else units[::-1])},
            placements=dict(sorted(placed.items(), reverse=flip)),
        )).decisions
        for flip in (True, False)
    }
    assert len(plans) == 1


# ------------------------------------------------ lifecycle, load, stability


def test_machine_loss_replaces_units_in_the_same_round() -> None:
    units = [unit("a.service"), unit("b.service"), unit("c.service")]
    plan = schedule(snap(THREE[1:], units, {"a.service": M1, "b.service": M2, "c.service": M3}))
    assert plan.decisions[0] == Decision(Action.UNSCHEDULE, "a.service", M1,
                                         f"machine {M1} went away")
    assert plan.decisions[1].action is Action.SCHEDULE
    assert plan.placements["a.service"] == M2  # tie on load: lowest machine id
    assert plan.placements["b.service"] == M2 and plan.placements["c.service"] == M3


def test_desired_inactive_unschedules() -> None:
    units = [unit("a.service", INACTIVE), unit("b.service", DesiredState.LOADED)]
    plan = schedule(snap(THREE, units, {"a.service": M1, "b.service": M2}))
    assert plan.decisions == (Decision(Action.UNSCHEDULE, "a.service", M1,
                                       "desired state is inactive"),)
    assert plan.placements == {"b.service": M2}
    assert "a.service" not in plan.unplaceable


def test_unknown_unit_is_unscheduled() -> None:
    plan = schedule(snap(THREE, [], {"gone.service": M1}))
    assert plan.decisions == (Decision(Action.UNSCHEDULE, "gone.service", M1,
                                       "unit is no longer in the registry"),)


def test_no_machines() -> None:
    plan = schedule(snap([], [unit("a.service"), unit("g.service", is_global=True)]))
    assert plan.unplaceable == {"a.service": {"": "no machines in the cluster"},
                                "g.service": {"": "no machines in the cluster"}}


@pytest.mark.parametrize(
    ("rules", "placed", "fragment"),
    [
        ({"machine_id": "deadbeef"}, {}, "MachineID=deadbeef is another machine"),
        ({"metadata": {"region": {"mars"}}}, {}, "metadata region=mars required"),
        ({"machine_of": ("p.service",)}, {}, "MachineOf peer p.service is not placed anywhere"),
        ({"conflicts": ("p*",)}, {"p1": M1, "p2": M2, "p3": M3}, "(Conflicts=p*)"),
    ],
    ids=["machine-id", "metadata", "machine-of", "conflicts"],
)
def test_unplaceable_reasons_name_the_rule_for_every_machine(
    rules: dict[str, object], placed: dict[str, str], fragment: str,
) -> None:
    machines = [machine(m, region="eu") for m in (M1, M2, M3)]
    units = [unit("x.service", LAUNCHED, **rules)] + [unit(name) for name in placed]
    plan = schedule(snap(machines, units, placed))
    reasons = plan.unplaceable["x.service"]
    assert set(reasons) == {M1, M2, M3}
    assert all(fragment in reason for reason in reasons.values()), reasons


def test_least_loaded_with_tie_break_on_machine_id() -> None:
    units = [unit(f"u{i}.service") for i in range(7)]
    placed = {"u0.service": M1, "u1.service": M1, "u2.service": M3}
    plan = schedule(snap(THREE, units, placed))
    new = [(d.unit, d.machine, d.reason) for d in plan.decisions]
    assert new == [
        ("u3.service", M2, "least loaded machine that passes every rule (0 units)"),
        ("u4.service", M2, "least loaded machine that passes every rule (1 units)"),
        ("u5.service", M3, "least loaded machine that passes every rule (1 units)"),
        ("u6.service", M1, "least loaded machine that passes every rule (2 units)"),
    ]


def test_stability_rescheduling_the_result_changes_nothing() -> None:
    machines = [machine(M1, region="eu"), machine(M2, region="us"), machine(M3, region="eu")]
    units = [
        unit("g.service", is_global=True, metadata={"region": {"eu"}}),
        unit("web@1.service", conflicts=("web@*",)),
        unit("web@2.service", conflicts=("web@*",)),
        unit("web@3.service", conflicts=("web@*",)),
        unit("side.service", machine_of=("web@2.service",)),
        unit("eu.service", metadata={"region": {"eu"}}),
        unit("pin.service", machine_id=M2[:8]),
        unit("new.service", replaces=("old.service",)),
        unit("old.service"),
    ]
    first = schedule(snap(machines, units, {"old.service": M1}))
    assert first.decisions
    second = schedule(again(snap(machines, units), first))
    assert second.decisions == ()
    assert second.placements == first.placements
    assert second.unplaceable == first.unplaceable


def test_valid_placements_do_not_move_when_a_machine_joins() -> None:
    units = [unit(f"u{i}.service") for i in range(6)]
    first = schedule(snap(THREE[:2], units))
    grown = schedule(again(snap(THREE, units), first))
    assert grown.decisions == ()
