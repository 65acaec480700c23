"""Fault injection: one random event in the simulated world.

The kinds: ``kill`` (hard death: /run is lost), ``revive`` (a reboot),
``partition`` (cut off from etcd only, or isolated from everything), ``heal``,
and the user's changes ``desired`` (a new desired state) and ``update`` (a new
body, hence a new hash). Kills and partitions are drawn only while fewer than
``max_down`` of the machines are down; revive and heal only when some machine
can be revived or healed. The seeded RNG of the world makes every choice.
"""

from __future__ import annotations

from collections.abc import Callable

from unitctl.scheduler import UnitInfo
from unitctl.sim.world import INACTIVE, LAUNCHED, LOADED, Node, World


def fault_kinds(world: World) -> list[str]:
    """The kinds possible now, repeated by weight."""
    ids = world.ids
    down = [m for m in ids if not world.nodes[m].reachable]
    kinds = ["desired", "update"]
    if len(down) < max(1, int(world.cfg.max_down * len(ids))):
        kinds += ["kill", "kill", "partition", "partition"]
    if any(not world.nodes[m].alive for m in ids):
        kinds += ["revive", "revive"]
    if any(world.nodes[m].alive and world.nodes[m].partition for m in ids):
        kinds += ["heal", "heal"]
    return kinds


def inject(world: World) -> None:
    """Draw one possible fault kind and apply it."""
    kind = world.rng.choice(fault_kinds(world))
    world.stats.events[kind] = world.stats.events.get(kind, 0) + 1
    FAULTS[kind](world)


def _pick(world: World, fits: Callable[[Node], bool]) -> Node:
    return world.nodes[world.rng.choice([m for m in world.ids
                                         if fits(world.nodes[m])])]


def kill(world: World) -> None:
    node = _pick(world, lambda n: n.reachable)
    node.alive = False
    node.partition = ""
    node.systemd.wipe()  # the unit directory lives in /run
    node.executor.forget_all()
    world.log("kill", node.machine.id[:8])


def revive(world: World) -> None:
    node = _pick(world, lambda n: not n.alive)
    node.alive = True
    node.fenced = False
    node.next_refresh = world.now  # registers on the next tick
    node.seen_version = -1
    world.log("revive", node.machine.id[:8])


def partition(world: World) -> None:
    node = _pick(world, lambda n: n.reachable)
    node.partition = world.rng.choice(["etcd", "isolated"])
    world.log("partition", node.machine.id[:8], node.partition)


def heal(world: World) -> None:
    node = _pick(world, lambda n: n.alive and bool(n.partition))
    node.partition = ""
    node.next_refresh = world.now
    world.log("heal", node.machine.id[:8])


def change_desired(world: World) -> None:
    name = world.rng.choice(world.unit_names)
    state = world.rng.choice([LAUNCHED, LAUNCHED, LOADED, INACTIVE])
    old = world.units[name]
    world.units[name] = UnitInfo(name, old.hash, state, old.req)
    world.dirty = True
    world.log("desired", name, state.value)


def update_body(world: World) -> None:
    name = world.rng.choice(world.unit_names)
    old = world.units[name]
    version = int(old.hash.rsplit("#", 1)[1]) + 1
    world.units[name] = UnitInfo(name, f"{name}#{version}", old.desired, old.req)
    world.dirty = True
    world.log("update", name, version)


#: Fault kind -> what it does.
FAULTS: dict[str, Callable[[World], None]] = {
    "kill": kill, "revive": revive, "partition": partition, "heal": heal,
    "desired": change_desired, "update": update_body,
}
