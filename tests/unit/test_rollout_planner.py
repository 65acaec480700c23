"""The rollout planner (unitctl.rollout) and its record codec.

The property: over random sequences of what the machines do (a replaced
instance comes up, stays down a while, fails; instances go down and back on
their own), a rollout never takes an available instance down when that would
leave more than ``max_unavailable`` down, and when only the rollout takes
instances down, never more than ``max_unavailable`` are down at once. It ends
done with every instance on the target, or reverted with every instance back
on its previous body.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unitctl import rolloutcodec
from unitctl.errors import RegistryError
from unitctl.rollout import (
    ACTIVE,
    Observed,
    Phase,
    Rollout,
    advance,
    available,
    resume,
    undo,
)

OLD, NEW = "a" * 40, "b" * 40


def _rollout(n: int, **kw: object) -> Rollout:
    base = Rollout("web@.service", NEW, {f"web@{i}.service": OLD for i in range(1, n + 1)},
                   {OLD: False, NEW: True}, deadline=10.0)
    return replace(base, **kw)  # type: ignore[arg-type]


def _up(sha: str, health: str = "healthy") -> Observed:
    return Observed(sha, sha, "active", health)


@dataclass
class World:
    """Each instance's unit hash, and what its machine runs: a write takes it down
    for ``delay`` steps, then it comes up (or fails, when its body is bad)."""

    units: dict[str, str]
    bad: set[str] = field(default_factory=set)
    coming: dict[str, int] = field(default_factory=dict)
    outside_down: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)

    def observe(self) -> dict[str, Observed]:
        seen = {}
        for i, sha in self.units.items():
            if i in self.coming or i in self.outside_down:
                seen[i] = Observed(sha, sha, "activating", "starting")
            elif i in self.failed:
                seen[i] = Observed(sha, sha, "active", "unhealthy")
            else:
                seen[i] = _up(sha, "healthy" if sha == NEW else "")
        return seen

    def write(self, writes: dict[str, str], delay: int) -> None:
        for i, sha in writes.items():
            self.units[i] = sha
            self.failed.discard(i)
            self.coming[i] = delay

    def tick(self) -> None:
        for i in list(self.coming):
            self.coming[i] -= 1
            if self.coming[i] <= 0:
                del self.coming[i]
                if self.units[i] in self.bad:
                    self.failed.add(i)


def _run(r: Rollout, world: World, delays: list[int], outside: list[int] | None = None,
         ) -> tuple[Rollout, int]:
    """Drive ``r`` to its end; return it and the most instances down at once."""
    now, worst = 0.0, 0
    for k in range(400):
        if outside and k < len(outside) and outside[k] >= 0:
            names = list(world.units)
            victim = names[outside[k] % len(names)]
            world.outside_down ^= {victim}
        if outside and k == len(outside):
            world.outside_down.clear()
        seen = world.observe()
        down = {i for i, o in seen.items() if not available(o)}
        step = advance(r, seen, now)
        taken = {i for i in step.writes if i not in down}
        if taken:  # the rule: never take available ones beyond the budget
            assert len(down) + len(taken) <= r.max_unavailable
        world.write(dict(step.writes), delays[k % len(delays)])
        r = step.rollout
        if r.phase is Phase.PAUSED:
            r = resume(r)
        if r.phase not in ACTIVE:
            return r, worst
        world.tick()
        now += 1.0
        worst = max(worst, len({i for i, o in world.observe().items() if not available(o)}))
    raise AssertionError(f"rollout did not end: {r}")


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 8), m=st.integers(1, 4), canary=st.integers(0, 3),
       delays=st.lists(st.integers(0, 6), min_size=1, max_size=12))
def test_never_more_than_max_unavailable_down_and_it_finishes(
        n: int, m: int, canary: int, delays: list[int]) -> None:
    r = _rollout(n, max_unavailable=m, canary=canary)
    world = World(dict(r.previous))
    end, worst = _run(r, world, delays)
    assert worst <= m
    assert end.phase is Phase.DONE
    assert set(world.units.values()) == {NEW} and not world.coming


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 8), m=st.integers(1, 4),
       delays=st.lists(st.integers(0, 6), min_size=1, max_size=12))
def test_a_failing_body_reverts_every_instance(n: int, m: int, delays: list[int]) -> None:
    r = _rollout(n, max_unavailable=m)
    world = World(dict(r.previous), bad={NEW})
    end, worst = _run(r, world, delays)
    assert worst <= m
    assert end.phase is Phase.REVERTED, end
    assert set(world.units.values()) == {OLD}
    assert "unhealthy" in end.reason


@settings(max_examples=150, deadline=None)
@given(n=st.integers(2, 8), m=st.integers(1, 3),
       delays=st.lists(st.integers(0, 4), min_size=1, max_size=8),
       outside=st.lists(st.integers(-3, 20), min_size=1, max_size=30))
def test_outside_failures_never_let_the_rollout_take_more_down(
        n: int, m: int, delays: list[int], outside: list[int]) -> None:
    r = _rollout(n, max_unavailable=m, deadline=1000.0)
    world = World(dict(r.previous))
    end, _ = _run(r, world, delays, outside)  # the budget rule is asserted at every step
    assert end.phase is Phase.DONE


def test_a_batch_past_its_deadline_reverts() -> None:
    r = _rollout(2)
    step = advance(r, {i: _up(OLD, "") for i in r.previous}, now=100.0)
    assert list(step.writes) == ["web@1.service"] and step.rollout.batch == ("web@1.service",)
    seen = {"web@1.service": Observed(NEW, NEW, "active", "starting"),
            "web@2.service": _up(OLD, "")}
    assert advance(step.rollout, seen, now=105.0).rollout == step.rollout  # still in time
    late = advance(step.rollout, seen, now=111.0)
    assert late.rollout.phase is Phase.REVERTING
    assert "web@1.service not active and healthy within 10s" in late.rollout.reason
    assert late.writes == {"web@1.service": OLD}


def test_canary_pauses_until_resumed() -> None:
    r = _rollout(4, canary=1)
    step = advance(r, {i: _up(OLD, "") for i in r.previous}, 0.0)
    assert list(step.writes) == ["web@1.service"]
    seen = {i: _up(OLD, "") for i in r.previous} | {"web@1.service": _up(NEW)}
    paused = advance(step.rollout, seen, 1.0).rollout
    assert paused.phase is Phase.PAUSED and "canary done" in paused.reason
    assert advance(paused, seen, 2.0).rollout == paused
    going = advance(resume(paused), seen, 3.0)
    assert list(going.writes) == ["web@2.service"]


def test_undo_of_a_done_rollout_reverts_all() -> None:
    r = _rollout(2, phase=Phase.DONE, replaced=("web@1.service", "web@2.service"))
    back = undo(r)
    assert back.phase is Phase.REVERTING
    step = advance(back, {i: _up(NEW) for i in r.previous}, 0.0)
    assert step.writes == {"web@1.service": OLD}
    with pytest.raises(ValueError, match="nothing to undo"):
        undo(replace(r, phase=Phase.REVERTED))


def test_a_unit_changed_outside_the_rollout_stops_it() -> None:
    r = _rollout(2)
    seen = {"web@1.service": _up(OLD, ""), "web@2.service": _up("c" * 40, "")}
    step = advance(r, seen, 0.0)
    assert step.rollout.phase is Phase.REVERTED  # nothing replaced yet: nothing to revert
    assert "web@2.service was changed outside the rollout" in step.rollout.reason
    assert not step.writes


def test_codec_round_trip_and_bad_values() -> None:
    r = _rollout(3, batch=("web@2.service",), replaced=("web@1.service",), since=5.0,
                 reason="x", canary=1, confirmed=True)
    assert rolloutcodec.decode("k", rolloutcodec.encode(r)) == r
    for bad in (b"{", b"[]", b'{"name": "x"}',
                rolloutcodec.encode(r).replace(b'"rolling"', b'"nope"'),
                rolloutcodec.encode(r).replace(b'"batch":["web@2.service"]',
                                               b'"batch":["other.service"]')):
        with pytest.raises(RegistryError, match="invalid rollout record at k"):
            rolloutcodec.decode("k", bad)
