"""The failure policy (pure): [X-Failover], the failure window, move planning and
backoff, and the scheduler's avoided machines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unitctl.errors import InvalidUnitError
from unitctl.failover import (
    DEFAULT_POLICY,
    FailurePolicy,
    FailureRecord,
    MoveRecord,
    appended,
    count,
    move_delay,
    parse_policy,
    plan_moves,
)
from unitctl.model import DesiredState, Machine, Requirements
from unitctl.registry import codec
from unitctl.scheduler import ClusterSnapshot, UnitInfo, schedule
from unitctl.unitfile import UnitFile

A, B, C = "a" * 32, "b" * 32, "c" * 32


def test_default_policy_and_parsing() -> None:
    assert parse_policy(UnitFile.parse("[Service]\nExecStart=/bin/true\n")) == DEFAULT_POLICY
    unit = UnitFile.parse("[Service]\nExecStart=/bin/true\n[X-Failover]\nFailures=5\n"
                          "Window=1min\nBackoff=5s\nBackoffMax=1h\nAvoidFor=2h\nMove=no\n")
    assert parse_policy(unit) == FailurePolicy(5, 60.0, 5.0, 3600.0, 7200.0, False)


@pytest.mark.parametrize(("line", "named"), [
    ("Failures=0", "Failures='0'"), ("Window=later", "Window='later'"),
    ("Move=maybe", "Move='maybe'"), ("Retry=1", "unknown key Retry="),
])
def test_bad_policy_refused_by_name(line: str, named: str) -> None:
    unit = UnitFile.parse(f"[Service]\nExecStart=/bin/true\n[X-Failover]\n{line}\n")
    with pytest.raises(InvalidUnitError, match="X-Failover") as err:
        parse_policy(unit)
    assert named in str(err.value)


@given(st.lists(st.floats(0, 1000)), st.floats(0, 1000), st.floats(1, 500))
def test_count_keeps_only_the_window(times: list[float], now: float, window: float) -> None:
    kept = count(times, now, window)
    assert list(kept) == sorted(kept)
    assert all(now - window <= t <= now for t in kept)
    assert len(kept) == sum(1 for t in times if now - window <= t <= now)


def _rec(machine: str, last: float = 100.0) -> FailureRecord:
    return FailureRecord("u.service", machine, 3, last - 60, last, "failed")


def test_a_failing_unit_leaves_its_machine_and_avoids_it() -> None:
    plan = plan_moves({"u.service": A}, {"u.service": {A: _rec(A)}}, {},
                      {"u.service": (DEFAULT_POLICY, False)}, 101.0)
    assert plan.leave == {"u.service": A} and plan.avoid == {"u.service": frozenset({A})}
    assert plan.why["u.service"] == "failed 3 times on aaaaaaaa in 60 s"


def test_pinned_or_move_no_stays() -> None:
    failures = {"u.service": {A: _rec(A)}}
    for policy, pinned in ((DEFAULT_POLICY, True), (FailurePolicy(move=False), False)):
        plan = plan_moves({"u.service": A}, failures, {}, {"u.service": (policy, pinned)}, 101)
        assert plan.leave == {}


def test_a_handled_record_does_not_move_again_and_expired_ones_are_not_avoided() -> None:
    history = {"u.service": (MoveRecord(A, 100.5),)}
    plan = plan_moves({"u.service": A}, {"u.service": {A: _rec(A), B: _rec(B, -5000)}},
                      history, {"u.service": (DEFAULT_POLICY, False)}, 101.0)
    assert plan.leave == {} and plan.avoid == {"u.service": frozenset({A})}


def test_moves_back_off_exponentially() -> None:
    policy = FailurePolicy(backoff=10.0, backoff_max=35.0)
    moves: tuple[MoveRecord, ...] = (MoveRecord(A, 100.0),)
    assert move_delay((), policy, 100.0) == 100.0
    assert move_delay(moves, policy, 101.0) == 110.0
    moves = appended(moves, MoveRecord(B, 110.0))
    assert move_delay(moves, policy, 111.0) == 130.0
    moves = appended(moves, MoveRecord(C, 130.0))
    assert move_delay(moves, policy, 131.0) == 165.0  # capped at 35 s
    # a move that is not due yet: the unit stays, and the engine is told when
    plan = plan_moves({"u.service": C}, {"u.service": {C: _rec(C, 140.0)}},
                      {"u.service": moves}, {"u.service": (policy, False)}, 141.0)
    assert plan.leave == {} and plan.next_due == 165.0 and plan.avoid == {}


def test_history_is_bounded_and_round_trips() -> None:
    history: tuple[MoveRecord, ...] = ()
    for i in range(15):
        history = appended(history, MoveRecord(A, float(i), "failed"))
    assert len(history) == 10 and history[0].at == 5.0
    assert codec.decode_moves("k", codec.encode_moves(history)) == history
    rec = _rec(B)
    assert codec.decode_failure("k", rec.unit, B, codec.encode_failure(rec)) == rec


NO_RULES = Requirements()


def _snapshot(placements: dict[str, str], avoid: dict[str, frozenset[str]],
              leave: dict[str, str], req: Requirements = NO_RULES) -> ClusterSnapshot:
    machines = {m: Machine(m) for m in (A, B, C)}
    units = {"u.service": UnitInfo("u.service", "h", DesiredState.LAUNCHED, req)}
    return ClusterSnapshot(machines, units, placements, avoid, leave)


def test_scheduler_moves_a_leaving_unit_off_its_machine_and_avoids() -> None:
    plan = schedule(_snapshot({"u.service": A}, {"u.service": frozenset({A, B})},
                              {"u.service": A}))
    assert plan.placements == {"u.service": C}
    assert "keeps failing on this machine" in plan.decisions[0].reason


def test_scheduler_falls_back_to_an_avoided_machine_when_nothing_else_passes() -> None:
    plan = schedule(_snapshot({"u.service": A}, {"u.service": frozenset({A, B, C})},
                              {"u.service": A}))
    assert plan.placements == {"u.service": A} and plan.decisions == ()
    pinned = Requirements(machine_id=A)
    plan = schedule(_snapshot({}, {"u.service": frozenset({A})}, {}, pinned))
    assert plan.placements == {"u.service": A}


@given(st.sets(st.sampled_from([A, B, C])), st.sampled_from([A, B, C, None]))
def test_scheduler_places_on_a_machine_not_avoided_whenever_one_exists(
        avoid: set[str], leave: str | None) -> None:
    placements = {} if leave is None else {"u.service": leave}
    plan = schedule(_snapshot(placements, {"u.service": frozenset(avoid)},
                              {} if leave is None else {"u.service": leave}))
    where = plan.placements["u.service"]
    shunned = avoid | ({leave} if leave else set())
    if shunned != {A, B, C}:
        assert where not in shunned
