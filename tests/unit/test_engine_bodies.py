"""ParsedBodies: one parse per body, the same answers as parsing for every unit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unitctl.engine.bodies import ParsedBodies
from unitctl.errors import InvalidUnitError
from unitctl.failover import DEFAULT_POLICY, FailurePolicy
from unitctl.failover import parse_policy as parse_failure_policy
from unitctl.model import Requirements
from unitctl.record import replace
from unitctl.resources import needs
from unitctl.unitfile import UnitFile
from unitctl.xfleet import requirements

#: Bodies whose answers depend on the instance (specifiers), on resource needs, on a
#: failure policy, or that do not parse at all.
BODIES = {
    "plain": "[Service]\nExecStart=/bin/true\n",
    "conflicts": "[Service]\nExecStart=/bin/true\n[X-Fleet]\nConflicts=web@%i.service\n",
    "machineof": "[Service]\nExecStart=/bin/true\n[X-Fleet]\nMachineOf=db@%i.service\n",
    "needs": "[Service]\nExecStart=/bin/true\nCPUQuota=50%\nMemoryMax=256M\n"
             "[X-Fleet]\nPorts=@PORT\n",
    "policy": "[Service]\nExecStart=/bin/true\n[X-Failover]\nFailures=5\nMove=no\n",
    "bad-policy": "[Service]\nExecStart=/bin/true\n[X-Failover]\nFailures=many\n",
    "broken": "[Service\nExecStart=/bin/true\n",
}


def one_by_one(name: str, body: str | None) -> tuple[Requirements | str, FailurePolicy]:
    """What the engine computed per unit before ParsedBodies (two parses each)."""
    if body is None:
        reqs: Requirements | str = "body not found"
    else:
        try:
            unit = UnitFile.parse(body)
            reqs = replace(requirements(name, unit), needs=needs(unit))
        except InvalidUnitError as exc:
            reqs = str(exc)
    try:
        policy = DEFAULT_POLICY if body is None else parse_failure_policy(UnitFile.parse(body))
    except InvalidUnitError:
        policy = DEFAULT_POLICY
    return reqs, policy


@settings(max_examples=60, deadline=None)
@given(units=st.lists(st.tuples(st.sampled_from(["web@1", "web@2", "db@7", "solo"]),
                                st.sampled_from([*BODIES, "absent"])), max_size=12))
def test_shared_parses_answer_as_one_parse_per_unit(units: list[tuple[str, str]]) -> None:
    parsed = ParsedBodies(BODIES)
    for stem, sha in units:
        name = f"{stem}.service"
        assert (parsed.requirements(name, sha), parsed.policy(sha)) == \
            one_by_one(name, BODIES.get(sha))


def test_the_bodies_exercise_each_branch() -> None:
    """The property above compares something: a policy, an error, specifiers."""
    assert one_by_one("x.service", BODIES["policy"])[1] != DEFAULT_POLICY
    assert one_by_one("x.service", BODIES["bad-policy"])[1] == DEFAULT_POLICY
    assert isinstance(one_by_one("x.service", BODIES["broken"])[0], str)
    needs_of = one_by_one("x.service", BODIES["needs"])[0]
    assert isinstance(needs_of, Requirements) and needs_of.needs.cpu_milli == 500


def test_a_body_is_parsed_once_for_many_units(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = UnitFile.parse

    def counting(text: str) -> UnitFile:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(UnitFile, "parse", staticmethod(counting))
    parsed = ParsedBodies({"t": BODIES["conflicts"]})
    got = [parsed.requirements(f"web@{i}.service", "t") for i in range(100)]
    assert all(parsed.policy("t") == DEFAULT_POLICY for _ in range(100))
    assert len(calls) == 1
    assert len({str(r) for r in got}) == 100  # each instance's own Conflicts= expansion
