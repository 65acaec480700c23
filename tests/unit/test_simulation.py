"""The deterministic simulation, small: invariants hold, seeds replay, and the
checker is not vacuous (with fencing disabled it must catch double runs, and a
double run that lasts one tick, mid-chaos, is caught at that tick; so are a
machine run over its capacity and a host port held twice, issue 13)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from unitctl.agent.fencing import keepalive_interval
from unitctl.sim import InvariantViolation, SimConfig, actors, simulate
from unitctl.sim.__main__ import main
from unitctl.sim.core import Simulation
from unitctl.sim.systemd import run_now
from unitctl.sim.workload import GIB
from unitctl.sim.world import Node, World


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
    simulate(SimConfig(machines=machines, units=units, steps=4, seed=seed, ttl_ms=ttl,
                       resources=False))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), machines=st.integers(3, 12),
       units=st.integers(1, 80), ttl=st.sampled_from([2_000, 10_000, 30_000]))
def test_no_machine_overcommitted_and_no_fixed_port_twice_over_random_workloads(
        seed: int, machines: int, units: int, ttl: int) -> None:
    """Issue 13: units with CPU/memory needs and fixed host ports on machines with
    capacities, through deaths and partitions; checked after every tick."""
    simulate(SimConfig(machines=machines, units=units, steps=4, seed=seed, ttl_ms=ttl,
                       dynamic_ports=False))


@settings(max_examples=15, deadline=None)
@example(seed=0, machines=3, units=53, ttl=2_000)
@given(seed=st.integers(0, 2**32 - 1), machines=st.integers(3, 12),
       units=st.integers(1, 80), ttl=st.sampled_from([2_000, 10_000, 30_000]))
def test_no_dynamic_port_given_twice_over_random_workloads(seed: int, machines: int,
                                                           units: int, ttl: int) -> None:
    """Issue 13: @PORT units as well; the example is a fence, a lost lease and the unit
    placed back on its machine with new ports: the agent loads it again with them
    (CurrentUnit.ports; it failed before that)."""
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
        simulate(SimConfig(machines=10, units=50, steps=3, seed=1, resources=False))
    assert caught.value.when_ms == blip["at"]
    both = sorted(m[:8] for m in (str(blip["placed"]), str(blip["machine"])))
    assert caught.value.problems == [f"{blip['unit']} runs on {both} at once"]


def _inject_at_first_chaos_tick(monkeypatch: pytest.MonkeyPatch,
                                 inject: Callable[[World], None]) -> dict[str, int]:
    """Call ``inject(world)`` once, after the first tick of the first chaos window."""
    real_tick = actors.tick
    at: dict[str, int] = {}

    def tick_and_inject(world: World) -> None:
        real_tick(world)
        if not at and world.stats.epochs == 1:
            inject(world)
            at["ms"] = world.now

    monkeypatch.setattr(actors, "tick", tick_and_inject)
    return at


def _move(world: World, name: str, to: Node) -> None:
    """Stop ``name`` where it runs and start it on ``to`` (through their systemd)."""
    for node in world.nodes.values():
        if name in node.running:
            run_now(node.systemd.stop(name))
    run_now(to.systemd.start(name))


def test_a_machine_run_over_its_memory_is_caught_at_that_tick(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Move big units (1.5 GiB each) onto a 2 GiB machine for one tick: the check
    after that tick names the machine and its memory."""
    small: list[str] = []

    def overcommit(world: World) -> None:
        target = next(n for n in world.nodes.values()
                      if n.alive and n.machine.capacity.mem_bytes == 2 * GIB)
        big = [n for n in sorted(world.placements) if world.reqs[n].needs.mem_bytes > GIB
               and n not in target.running][:2]
        for name in big:
            _move(world, name, target)
        small.append(target.machine.id[:8])

    at = _inject_at_first_chaos_tick(monkeypatch, overcommit)
    with pytest.raises(InvariantViolation) as caught:
        simulate(SimConfig(machines=10, units=100, steps=3, seed=1))
    assert caught.value.when_ms == at["ms"]
    assert any(p.startswith(f"{small[0]} runs ") and "of memory, capacity 2" in p
               for p in caught.value.problems), caught.value.problems


def test_a_fixed_port_held_twice_on_a_machine_is_caught_at_that_tick(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Move a unit that binds host port P next to another unit that binds P."""
    pair: list[str] = []

    def clash(world: World) -> None:
        fixed = [n for n in sorted(world.placements) if world.reqs[n].needs.fixed_ports
                 and any(n in node.running for node in world.nodes.values())]
        first = fixed[0]
        port = world.reqs[first].needs.fixed_ports[0]
        second = next(n for n in fixed[1:] if world.reqs[n].needs.fixed_ports == (port,))
        host = world.nodes[world.placements[first]]
        _move(world, second, host)
        pair.extend([f"port {port} held by {', '.join(sorted([first, second]))} at once "
                     f"on {host.machine.id[:8]}"])

    at = _inject_at_first_chaos_tick(monkeypatch, clash)
    with pytest.raises(InvariantViolation) as caught:
        simulate(SimConfig(machines=10, units=400, steps=3, seed=1))
    assert caught.value.when_ms == at["ms"]
    assert pair[0] in caught.value.problems


def test_a_dynamic_port_held_twice_is_read_from_the_drop_in_a_unit_started_with(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit started with a drop-in naming a port another running unit holds: the
    check reads the ports from the drop-in at start, not from the schedule."""
    found: list[str] = []

    def stale_dropin(world: World) -> None:
        owner, node = next((n, world.nodes[m]) for n, m in sorted(world.placements.items())
                           if n in world.nodes[m].running and node_env(world, n, m))
        port = node_env(world, owner, node.machine.id)[0][1]
        other = next(n for n in sorted(world.placements)
                     if world.reqs[n].needs.dynamic_ports and n != owner
                     and n not in node.running)
        node.systemd.dropins.write(other, (("PORT", port),))
        _move(world, other, node)
        found.append(f"port {port} held by {', '.join(sorted([owner, other]))} at once "
                     f"on {node.machine.id[:8]}")

    at = _inject_at_first_chaos_tick(monkeypatch, stale_dropin)
    with pytest.raises(InvariantViolation) as caught:
        simulate(SimConfig(machines=10, units=100, steps=3, seed=1))
    assert caught.value.when_ms == at["ms"]
    assert found[0] in caught.value.problems


def node_env(world: World, name: str, machine: str) -> tuple[tuple[str, int], ...]:
    """The ports drop-in of ``name`` on ``machine``."""
    return world.nodes[machine].systemd.dropins.env.get(name, ())


def test_the_resource_workload_fills_machines_and_hands_out_ports() -> None:
    """The capacity checks are not vacuous: machines are well used, ports are held."""
    sim = Simulation(SimConfig(machines=20, units=200, steps=2, seed=5))
    sim.run()
    used = [sim.ledger.mem.get(m, 0) / n.machine.capacity.mem_bytes
            for m, n in sim.nodes.items() if n.alive and n.machine.capacity.mem_bytes]
    assert max(used) > 0.5
    assert sum(len(p) for p in sim.ledger.ports.values()) > 20
    assert sim.stats.tick_checks * SimConfig().tick_ms == sim.stats.virtual_ms


def test_sessions_keep_alive_at_the_agents_interval() -> None:
    """The model's keepalive is the agent's own (TTL/5), not a copy of it."""
    assert actors.keepalive_ms(10_000) == round(keepalive_interval(10) * 1000) == 2000
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
