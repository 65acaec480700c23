"""The bundle plan's invariants (pure, hypothesis): applying a plan then planning
again finds nothing to do, and a prune never touches a unit the bundle does not own."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unitctl.bundle.diff import action_lines, diff_text
from unitctl.bundle.plan import Desired, DesiredUnit, Stored, applied, plan, state_groups
from unitctl.errors import ConflictError
from unitctl.model import DesiredState, UnitRecord

NAMES = [f"u{i}.service" for i in range(6)]
BUNDLES = ["web", "db"]
STATES = list(DesiredState)


def _unit(name: str, body: str, state: DesiredState) -> DesiredUnit:
    return DesiredUnit(name, body, hashlib.sha1(body.encode()).hexdigest(), state)


desired_units = st.dictionaries(st.sampled_from(NAMES),
                                st.tuples(st.sampled_from(["a\n", "b\n", "c\n"]),
                                          st.sampled_from(STATES)))
stored_units = st.dictionaries(st.sampled_from(NAMES),
                               st.tuples(st.sampled_from(["a\n", "b\n", "d\n"]),
                                         st.sampled_from(STATES)))
owners = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(BUNDLES))


def _desired(units: dict[str, tuple[str, DesiredState]]) -> Desired:
    return Desired("web", tuple(_unit(n, b, s) for n, (b, s) in sorted(units.items())))


def _stored(units: dict[str, tuple[str, DesiredState]], own: dict[str, str]) -> Stored:
    return Stored({n: UnitRecord(n, _unit(n, b, s).hash, s) for n, (b, s) in units.items()},
                  own)


def _plannable(d: Desired, s: Stored, adopt: bool) -> bool:
    try:
        plan(d, s, adopt=adopt)
    except ConflictError:
        return False
    return True


@given(desired_units, stored_units, owners, st.booleans(), st.booleans())
def test_plan_then_apply_then_plan_is_empty(want: dict[str, tuple[str, DesiredState]],
                                            have: dict[str, tuple[str, DesiredState]],
                                            own: dict[str, str], prune: bool,
                                            adopt: bool) -> None:
    d, s = _desired(want), _stored(have, own)
    if not _plannable(d, s, adopt):
        return
    first = plan(d, s, prune, adopt)
    after = applied(s, first, d)
    again = plan(d, after, prune, adopt)
    assert again.empty, again
    for unit in d.units:
        assert after.units[unit.name].hash == unit.hash
        assert after.units[unit.name].desired is unit.desired
        assert after.owners[unit.name] == "web"


@given(desired_units, stored_units, owners, st.booleans())
def test_prune_touches_only_units_the_bundle_owns(want: dict[str, tuple[str, DesiredState]],
                                                  have: dict[str, tuple[str, DesiredState]],
                                                  own: dict[str, str], adopt: bool) -> None:
    d, s = _desired(want), _stored(have, own)
    if not _plannable(d, s, adopt):
        return
    p = plan(d, s, prune=True, adopt=adopt)
    assert all(s.owners.get(n) == "web" for n in p.prune)
    assert not set(p.prune) & set(want)
    after = applied(s, p, d)
    for name in s.units:
        if s.owners.get(name) != "web" and name not in want:
            assert after.units[name] == s.units[name]


@given(desired_units, stored_units, owners)
def test_without_prune_no_stored_unit_goes(want: dict[str, tuple[str, DesiredState]],
                                           have: dict[str, tuple[str, DesiredState]],
                                           own: dict[str, str]) -> None:
    d, s = _desired(want), _stored(have, own)
    if _plannable(d, s, True):
        assert set(applied(s, plan(d, s, adopt=True), d).units) >= set(s.units)


def test_units_of_another_bundle_or_of_none_are_refused() -> None:
    d = _desired({"u0.service": ("a\n", DesiredState.LAUNCHED)})
    with pytest.raises(ConflictError, match="belongs to bundle db"):
        plan(d, _stored({"u0.service": ("a\n", DesiredState.LAUNCHED)}, {"u0.service": "db"}))
    with pytest.raises(ConflictError, match="--adopt"):
        plan(d, _stored({"u0.service": ("a\n", DesiredState.LAUNCHED)}, {}))
    adopted = plan(d, _stored({"u0.service": ("a\n", DesiredState.LAUNCHED)}, {}), adopt=True)
    assert adopted.claim == ("u0.service",) and not adopted.create
    assert action_lines(adopted) == ["Unit u0.service adopted by bundle web"]


def test_diff_shows_bodies_states_and_prunes() -> None:
    d = _desired({"u0.service": ("a\n", DesiredState.LAUNCHED),
                  "u1.service": ("b\n", DesiredState.LOADED)})
    s = _stored({"u1.service": ("d\n", DesiredState.LAUNCHED),
                 "u2.service": ("a\n", DesiredState.LAUNCHED)},
                {"u1.service": "web", "u2.service": "web"})
    p = plan(d, s, prune=True)
    old = {s.units["u1.service"].hash: "d\n"}
    text = diff_text(p, old)
    assert "--- /dev/null\n+++ b/u0.service\n@@ -0,0 +1 @@\n+a\n" in text
    assert "--- a/u1.service\n+++ b/u1.service\n@@ -1 +1 @@\n-d\n+b\n" in text
    assert "state u0.service: inactive -> launched\n" in text
    assert "state u1.service: launched -> loaded\n" in text
    assert "prune u2.service" in text
    assert diff_text(plan(d, applied(s, p, d), prune=True), {}) == ""


def test_state_groups_stop_before_start() -> None:
    d = _desired({"u0.service": ("a\n", DesiredState.LAUNCHED),
                  "u1.service": ("a\n", DesiredState.INACTIVE),
                  "u2.service": ("a\n", DesiredState.LOADED)})
    s = _stored({n: ("a\n", DesiredState.LAUNCHED) for n in ("u1.service", "u2.service")},
                {"u1.service": "web", "u2.service": "web"})
    groups = state_groups(plan(d, s).states)
    assert [g for g, _ in groups] == [DesiredState.INACTIVE, DesiredState.LOADED,
                                      DesiredState.LAUNCHED]
