"""The simulator's invariants: one checked at every tick, the others once the cluster is stable.

0. at every tick (every virtual instant, chaos included), from what the
   machines' systemd records say runs (:class:`~unitctl.sim.ledger.RunLedger`),
   looking only at what the tick changed (:func:`check_tick`):
   no unit runs on two machines at once (a global unit runs at most once per
   machine by construction); no live machine runs more CPU or memory than its
   capacity; no host port is held by two running units of one machine;

Once stable:

1. every launched unit the scheduler can place runs on exactly one live
   machine (partitioned ones included), and every other unit runs nowhere;
   every loaded unit has its file on exactly its machine and does not run;
2. no unit sits on a machine that breaks its rules: MachineID, metadata,
   Conflicts against every co-resident unit, MachineOf peers present;
3. the schedule is a fixed point: scheduling it again gives no decisions;
4. the ledger the per-tick checks read agrees with a recount of every
   machine's records (:func:`check_ledger`).

A violation raises :class:`InvariantViolation` carrying the seed.
"""

from __future__ import annotations

from unitctl.agent.reconcile import accept
from unitctl.resources import format_bytes, format_cpu
from unitctl.scheduler import schedule
from unitctl.sim.world import INACTIVE, LAUNCHED, Node, World
from unitctl.xfleet import conflicts_between


class InvariantViolation(AssertionError):
    """An invariant broke; ``seed`` replays the run."""

    def __init__(self, seed: int, when_ms: int, problems: list[str]) -> None:
        self.seed = seed
        self.when_ms = when_ms
        self.problems = problems
        head = "; ".join(problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"seed {seed}: invariant violated at t={when_ms / 1000:.1f}s: "
                         f"{head}{more}")


def check(world: World) -> None:
    """Check every invariant now; raise :class:`InvariantViolation` if one breaks."""
    world.stats.checks += 1
    problems = (check_once(world) + check_rules(world) + check_fixed_point(world)
                + check_ledger(world))
    if problems:
        raise InvariantViolation(world.cfg.seed, world.now, problems)


def check_tick(world: World) -> None:
    """Invariant 0, at this instant, over what changed since the last tick: no placed
    unit runs on two machines; no live machine over its capacity or with a port twice."""
    world.stats.tick_checks += 1
    ledger = world.ledger
    units, machines = ledger.take_touched()
    problems = [f"{name} runs on {sorted(m[:8] for m in ledger.where[name])} at once"
                for name in units
                if len(ledger.where.get(name, ())) > 1 and not world.reqs[name].is_global]
    for mid in machines:
        problems += _overcommit(world, mid)
    if problems:
        raise InvariantViolation(world.cfg.seed, world.now, problems)


def _overcommit(world: World, mid: str) -> list[str]:
    """What machine ``mid`` runs beyond its capacity, and the host ports it holds twice."""
    node, ledger = world.nodes[mid], world.ledger
    if not node.alive:
        return []
    problems: list[str] = []
    cap = node.machine.capacity
    cpu, mem = ledger.cpu.get(mid, 0), ledger.mem.get(mid, 0)
    if cap.cpu_milli is not None and cpu > cap.cpu_milli:
        problems.append(f"{mid[:8]} runs {format_cpu(cpu)} CPUs, capacity "
                        f"{format_cpu(cap.cpu_milli)}")
    if cap.mem_bytes is not None and mem > cap.mem_bytes:
        problems.append(f"{mid[:8]} runs {format_bytes(mem)} of memory, capacity "
                        f"{format_bytes(cap.mem_bytes)}")
    for port, holders in ledger.twice_held(mid).items():
        problems.append(f"port {port} held by {', '.join(holders)} at once on {mid[:8]}")
    return problems


def check_ledger(world: World) -> list[str]:
    """Invariant 4: the per-tick index equals a recount of the machines' records."""
    where: dict[str, set[str]] = {}
    ports: dict[str, dict[int, list[str]]] = {}
    for mid in world.ids:
        node = world.nodes[mid]
        for name in sorted(node.running):
            where.setdefault(name, set()).add(mid)
            env = node.systemd.dropins.env.get(name, ())
            for port in (*world.reqs[name].needs.fixed_ports, *(p for _, p in env)):
                ports.setdefault(mid, {}).setdefault(port, []).append(name)
    held = {m: {p: sorted(us) for p, us in per.items()}
            for m, per in world.ledger.ports.items() if per}
    problems = [] if where == world.ledger.where else ["the run index disagrees with systemd"]
    if {m: {p: sorted(us) for p, us in per.items()} for m, per in ports.items()} != held:
        problems.append("a running unit holds other ports than its drop-in names now "
                        "(the drop-in changed after it started, or the index is wrong)")
    return problems


def _where(world: World) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """unit -> the machines running it; unit -> the reachable machines with its file."""
    where: dict[str, list[str]] = {}
    loaded_at: dict[str, list[str]] = {}
    for mid in world.ids:
        node = world.nodes[mid]
        for name in node.running:
            where.setdefault(name, []).append(mid[:8])
        for name in node.files if node.reachable else ():
            loaded_at.setdefault(name, []).append(mid[:8])
    return where, loaded_at


def check_once(world: World) -> list[str]:
    """Invariant 1: each unit runs (and is loaded) exactly where it is scheduled."""
    problems: list[str] = []
    where, loaded_at = _where(world)
    refused = {mid: accept(world.nodes[mid].machine, world.desired_of(mid))
               for mid in sorted(world.registered)}
    for name in world.unit_names:
        runs = where.get(name, [])
        if world.units[name].req.is_global:
            problems += _check_global(world, name, runs, refused)
        else:
            problems += _check_placed(world, name, runs, loaded_at.get(name, []))
    return problems


def _check_global(world: World, name: str, runs: list[str],
                  refused: dict[str, dict[str, str]]) -> list[str]:
    """A launched global unit runs on every machine it is placed on that accepts it."""
    plan = world.last_plan
    if world.units[name].desired is not LAUNCHED or plan is None:
        expect = 0
    else:
        expect = len([m for m in plan.global_placements.get(name, ())
                      if name not in refused.get(m, {})])
    if len(runs) != expect:
        return [f"global {name} runs on {len(runs)} machines, expected {expect}"]
    return []


def _check_placed(world: World, name: str, runs: list[str], files: list[str]) -> list[str]:
    problems: list[str] = []
    unit = world.units[name]
    placed = world.placements.get(name)
    if unit.desired is LAUNCHED:
        expect_on = [placed[:8]] if placed else []
        if sorted(runs) != expect_on:
            problems.append(f"launched {name} runs on {runs or 'nothing'}, "
                            f"scheduled to {placed and placed[:8]}")
    elif runs:
        problems.append(f"{unit.desired.value} {name} runs on {runs}")
    if unit.desired is not INACTIVE and files != ([placed[:8]] if placed else []):
        problems.append(f"{name} loaded on {files}, scheduled to {placed and placed[:8]}")
    if unit.desired is INACTIVE and files:
        problems.append(f"inactive {name} still loaded on {files}")
    return problems


def check_rules(world: World) -> list[str]:
    """Invariant 2, independent of the scheduler: each machine's units against their rules."""
    problems: list[str] = []
    for mid in world.ids:
        node = world.nodes[mid]
        present = sorted(set(node.files) | node.running)
        for name in present:
            problems += _unit_rules(world, node, name)
        with_rules = [n for n in present if world.reqs[n].conflicts]
        for a in with_rules:
            for b in present:
                pair = a < b or (b not in with_rules and a != b)
                if pair and conflicts_between(a, world.reqs[a], b, world.reqs[b]):
                    problems.append(f"{a} and {b} conflict on {mid[:8]}")
    return problems


def _unit_rules(world: World, node: Node, name: str) -> list[str]:
    problems: list[str] = []
    req, m = world.reqs[name], node.machine
    if req.machine_id is not None and req.machine_id not in (m.id, m.short_id):
        problems.append(f"{name} on {m.id[:8]} breaks MachineID={req.machine_id}")
    for key, values in req.metadata.items():
        if m.metadata.get(key) not in values:
            problems.append(f"{name} on {m.id[:8]} breaks metadata {key}")
    for peer in req.machine_of:
        if peer != name and peer not in node.files:
            problems.append(f"{name} on {m.id[:8]} without its MachineOf {peer}")
    return problems


def check_fixed_point(world: World) -> list[str]:
    """Invariant 3: scheduling the current state again decides nothing."""
    plan = schedule(world.snapshot())
    moves = [f"{d.action.value} {d.unit}" for d in plan.decisions]
    return [f"not a fixed point: {', '.join(moves[:3])}"] if moves else []
