"""The deterministic simulation, small: invariants hold, seeds replay, and the
checker is not vacuous (with fencing disabled it must catch double runs, and a
double run that lasts one tick, mid-chaos, is caught at that tick)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unitctl.agent.fencing import keepalive_interval
from unitctl.sim import InvariantViolation, SimConfig, actors, simulate
from unitctl.sim.__main__ import main
from unitctl.sim.world import World


@pytest.mark.parametrize("seed", range(6))
def test_invariants_hold_through_deaths_and_partitions(seed: int) -> None:
    result = simulate(SimConfig(machines=20, units=200, steps=6, seed=seed))
    s = result.stats
    assert s.checks == 7  # after boot and after every epoch
    assert s.tick_checks * SimConfig().tick_ms == s.virtual_ms  # and "never twice" every tick
    assert sum(s.events.values()) > 0
    assert s.max_wakes_single <= 2  # one unit changing wakes its machine(s) only


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), machines=st.integers(3, 12),
       units=st.integers(1, 80), ttl=st.sampled_from([2_000, 10_000, 30_000]))
def test_invariants_hold_for_any_seed_and_size(seed: int, machines: int, units: int,
                                               ttl: int) -> None:
    simulate(SimConfig(machines=machines, units=units, steps=4, seed=seed, ttl_ms=ttl))


def test_same_seed_replays_identically() -> None:
    cfg = SimConfig(machines=20, units=200, steps=6, seed=42)
    first, again = simulate(cfg), simulate(cfg)
    assert first.digest == again.digest
    assert first.summary() == again.summary()
    assert simulate(SimConfig(machines=20, units=200, steps=6, seed=43)).digest != first.digest


def test_without_fencing_a_partition_runs_units_twice() -> None:
    found = []
    for seed in range(10):
        try:
            simulate(SimConfig(machines=20, units=200, steps=6, seed=seed, fencing=False))
        except InvariantViolation as exc:
            assert exc.seed == seed
            found.append(exc)
    assert found, "the checker never noticed units running on a cut-off machine"
    assert any("runs on" in p for exc in found for p in exc.problems)


def test_a_double_run_of_one_tick_mid_chaos_is_caught_at_that_tick(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a unit on a second machine for one tick of the first chaos window, then
    stop it: the cluster is clean again long before it settles, so only a check at
    every tick can see it."""
    real_tick = actors.tick
    blip: dict[str, object] = {}

    def tick_with_a_blip(world: World) -> None:
        real_tick(world)
        if blip:
            node = world.nodes[str(blip["machine"])]
            node.running.discard(str(blip["unit"]))  # gone after one tick
        elif world.stats.epochs == 1:
            name, mid = next((n, m) for n, m in sorted(world.placements.items())
                             if n in world.nodes[m].running)
            other = next(m for m in sorted(world.nodes) if m != mid and world.nodes[m].alive)
            world.nodes[other].running.add(name)
            blip.update(unit=name, placed=mid, machine=other, at=world.now)

    monkeypatch.setattr(actors, "tick", tick_with_a_blip)
    with pytest.raises(InvariantViolation) as caught:
        simulate(SimConfig(machines=10, units=50, steps=3, seed=1))
    assert caught.value.when_ms == blip["at"]
    both = sorted(m[:8] for m in (str(blip["placed"]), str(blip["machine"])))
    assert caught.value.problems == [f"{blip['unit']} runs on {both} at once"]


def test_sessions_keep_alive_at_the_agents_interval() -> None:
    """The model's keepalive is the agent's own (TTL/8), not a copy of it."""
    assert actors.keepalive_ms(10_000) == round(keepalive_interval(10) * 1000) == 1250
    assert actors.keepalive_ms(1_000) == 200


def test_cli_exits_non_zero_with_the_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--machines", "20", "--units", "200", "--steps", "2", "--seed", "3"]) == 0
    assert "seed=3" in capsys.readouterr().out
    rc = 0
    for seed in range(10):
        rc = main(["--machines", "20", "--units", "200", "--steps", "6", "--seed", str(seed),
                   "--no-fencing"])
        if rc:
            break
    assert rc == 1
    err = capsys.readouterr().err
    assert f"seed {seed}" in err and f"--seed {seed}" in err
