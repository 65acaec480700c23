"""The deterministic simulation, small: invariants hold, seeds replay, and the
checker is not vacuous (with fencing disabled it must catch double runs)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unitctl.sim import InvariantViolation, SimConfig, simulate
from unitctl.sim.__main__ import main


@pytest.mark.parametrize("seed", range(6))
def test_invariants_hold_through_deaths_and_partitions(seed: int) -> None:
    result = simulate(SimConfig(machines=20, units=200, steps=6, seed=seed))
    s = result.stats
    assert s.checks == 7  # after boot and after every epoch
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
