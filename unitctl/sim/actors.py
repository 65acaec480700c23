"""The simulated processes, one virtual tick at a time: sessions, fence, engine, agents.

* sessions: keepalive every :func:`unitctl.agent.options.keepalive_interval`
  (the agent's own, TTL/8) while reachable; a machine registers again
  after its lease expired; the lease (and the machine key) expires TTL after the
  last keepalive; the lowest reachable registered machine becomes leader;
* fence: every TTL/20, each live agent silent for ``FENCE_AFTER * ttl`` applies
  the real :func:`unitctl.agent.fencing.decide` to its peers' reports;
* engine: the leader runs the real :func:`unitctl.scheduler.schedule` when
  anything changed, and writes the per-machine schedules;
* agents: an agent whose schedule changed reconciles with the real
  :func:`~unitctl.agent.reconcile.accept`, :func:`~unitctl.agent.reconcile.compute_tasks`
  and :class:`~unitctl.agent.executor.Executor` (over its modelled systemd).
"""

from __future__ import annotations

from unitctl.agent.fencing import (
    FENCE_AFTER,
    PeerReport,
    Verdict,
    decide,
    hold_pause,
    keepalive_interval,
)
from unitctl.agent.reconcile import accept, compute_tasks
from unitctl.engine.planned import schedules_of
from unitctl.scheduler import Plan, schedule
from unitctl.sim.systemd import BODIES, run_now
from unitctl.sim.world import Node, World


def tick(world: World) -> None:
    """Advance the clock one tick and run every process once."""
    world.now += world.cfg.tick_ms
    sessions(world)
    fence(world)
    engine(world)
    agents(world)


def sessions(world: World) -> None:
    """Keepalives, re-registration, lease expiry (the machine key goes with it)."""
    for mid in world.ids:
        node = world.nodes[mid]
        if node.reachable and world.now >= node.next_refresh:
            _keepalive(world, mid, node)
        if mid in world.registered and world.now >= node.lease_expires:
            world.registered.discard(mid)
            world.dirty = True
            world.log("expire", mid[:8])
    _elect(world)


def _keepalive(world: World, mid: str, node: Node) -> None:
    ttl = world.cfg.ttl_ms
    if mid not in world.registered or world.now >= node.lease_expires:
        world.registered.add(mid)
        world.dirty = True
        node.seen_version = -1  # a new session reads its schedule
        world.log("register", mid[:8])
    node.lease_expires = world.now + ttl
    node.next_refresh = world.now + keepalive_ms(ttl)
    if node.fenced:  # etcd reachable again: lift the fence
        node.fenced = False
        node.executor.forget_all()
        node.seen_version = -1
        world.log("unfence", mid[:8])
    node.last_contact = world.now


def keepalive_ms(ttl_ms: int) -> int:
    """The agent's keepalive interval for a TTL of ``ttl_ms``, in virtual milliseconds."""
    return round(keepalive_interval(ttl_ms / 1000) * 1000)


def _elect(world: World) -> None:
    if world.leader is not None and world.leader not in world.registered:
        world.leader = None
    if world.leader is None:
        live = [m for m in sorted(world.registered) if world.nodes[m].reachable]
        if live:
            world.leader = live[0]
            world.dirty = True
            world.log("leader", world.leader[:8])


def fence(world: World) -> None:
    """The fence loop of every live agent cut off from etcd (every TTL/20; while
    holding, at the real :func:`~unitctl.agent.fencing.hold_pause`)."""
    ttl, tick_ms = world.cfg.ttl_ms, world.cfg.tick_ms
    step = max(tick_ms, ttl // 20 // tick_ms * tick_ms)
    if not world.cfg.fencing or world.now % step:
        return
    for mid in world.ids:
        node = world.nodes[mid]
        age = world.now - node.last_contact
        if not node.alive or node.fenced or age < FENCE_AFTER * ttl:
            node.next_ask, node.hold_ms = 0, 0
            continue
        if world.now < node.next_ask:
            continue
        verdict = _decide(world, node, age)
        if verdict is Verdict.HOLD:
            pause = hold_pause(ttl / 1000, age / 1000, node.hold_ms / 1000)
            node.hold_ms = int(pause * 1000) // step * step
            node.next_ask = world.now + node.hold_ms
        if verdict is Verdict.FENCE:
            node.fenced = True
            node.stop_everything()
            world.stats.fences += 1
            world.log("fence", mid[:8])


def _decide(world: World, node: Node, age: int) -> Verdict:
    """The real rule over what this node's peers would answer now."""
    mid, ttl = node.machine.id, world.cfg.ttl_ms
    peers = [p for p in world.ids if p != mid]
    reports = [] if node.partition == "isolated" else [
        PeerReport(p, (world.now - world.nodes[p].last_contact) / 1000)
        for p in peers
        if world.nodes[p].alive and world.nodes[p].partition != "isolated"]
    verdict, _why = decide(age / 1000, ttl / 1000, keepalive_ms(ttl) / 1000, len(peers),
                           reports)
    return verdict


def engine(world: World) -> None:
    """One engine round on the leader, when anything changed."""
    if not world.dirty or world.leader is None or not world.nodes[world.leader].reachable:
        return
    world.dirty = False
    plan = schedule(world.snapshot())
    world.last_plan = plan
    world.stats.rounds += 1
    world.stats.decisions += len(plan.decisions)
    world.placements = dict(plan.placements)
    woken = _write_schedules(world, plan)
    moved = {d.unit for d in plan.decisions}
    if len(moved) == 1 and not any(world.units[u].req.is_global for u in moved):
        world.stats.max_wakes_single = max(world.stats.max_wakes_single, len(woken))
    if plan.decisions:
        world.log("round", len(plan.decisions), ",".join(
            f"{d.action.value[0]}{d.unit}@{d.machine[:8]}" for d in plan.decisions))


def _write_schedules(world: World, plan: Plan) -> list[str]:
    """Store the plan's per-machine schedules; return the machines whose one changed."""
    wanted = schedules_of(plan, world.units)
    changed = 0
    woken: list[str] = []
    for machine in sorted(set(wanted) | set(world.schedules)):
        have, want = world.schedules.get(machine, {}), wanted.get(machine, {})
        if have != want:
            changed += sum(1 for n in set(have) | set(want) if have.get(n) != want.get(n))
            world.versions[machine] = world.versions.get(machine, 0) + 1
            woken.append(machine)
    world.schedules = wanted
    world.stats.schedule_changes += changed
    return woken


def agents(world: World) -> None:
    """Every reachable, registered agent whose schedule changed reconciles."""
    for mid in world.ids:
        node = world.nodes[mid]
        if (not node.reachable or mid not in world.registered
                or node.seen_version == world.versions.get(mid, 0)):
            continue
        node.seen_version = world.versions.get(mid, 0)
        world.stats.wakes += 1
        reconcile(world, node)


def reconcile(world: World, node: Node) -> None:
    """The agent's reconcile: desired from its schedule, accept, compute, execute."""
    desired = world.desired_of(node.machine.id)
    for name in accept(node.machine, desired):
        del desired[name]
    tasks = compute_tasks(desired, node.executor.current())
    world.stats.tasks += len(tasks)
    failure = run_now(node.executor.run(tasks, desired, BODIES))
    if failure is not None:
        raise failure  # the modelled systemd never fails
