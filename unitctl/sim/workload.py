"""Synthetic clusters for the simulator and the benchmarks (pure, deterministic).

Machines carry ``region`` (us/eu/ap) and ``disk`` (ssd/hdd) metadata. Units
follow a fixed rule mix, by index ``i``:

* 10 % MachineMetadata (region, 3 % also disk=ssd);
* 5 % Conflicts: groups of instances ``db<g>@<i>`` that must spread;
* 5 % MachineOf: ``side-<i>`` follows ``app-<i+20>``;
* 1 % Global (every other one needs disk=ssd);
* 0.5 % MachineID: pinned to one machine (short id);
* the rest (~78 %) plain ``app-<i>`` units.
"""

from __future__ import annotations

from unitctl.model import Machine, Requirements

REGIONS = ("us", "eu", "ap")
DISKS = ("ssd", "hdd")


def machine_id(index: int) -> str:
    """The 32-hex id of machine ``index`` (its short id is unique up to 2**32)."""
    return f"{index:08x}" + "0" * 24


def make_machines(count: int) -> dict[str, Machine]:
    """Return ``count`` machines with region/disk metadata, by id."""
    out: dict[str, Machine] = {}
    for i in range(count):
        mid = machine_id(i)
        meta = {"region": REGIONS[i % 3], "disk": DISKS[(i // 3) % 2]}
        out[mid] = Machine(id=mid, public_ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                           metadata=meta)
    return out


def unit_rules(i: int, machines: int, globals_: bool = True) -> tuple[str, Requirements]:
    """Return the name and rules of unit ``i`` (see the module docs)."""
    bucket = i % 200
    if bucket < 20:
        meta = {"region": frozenset({REGIONS[i % 3]})}
        if bucket < 6:
            meta["disk"] = frozenset({"ssd"})
        return f"meta-{i}.service", Requirements(metadata=meta)
    if bucket < 30:
        group = i // 800
        return f"db{group}@{i}.service", Requirements(conflicts=(f"db{group}@*.service",))
    if bucket < 40:
        return f"side-{i}.service", Requirements(machine_of=(f"app-{i + 20}.service",))
    if bucket < 42 and globals_:
        meta = {"disk": frozenset({"ssd"})} if i % 2 else {}
        return f"global-{i}.service", Requirements(is_global=True, metadata=meta)
    if bucket == 42:
        return f"pinned-{i}.service", Requirements(machine_id=machine_id(i % machines)[:8])
    return f"app-{i}.service", Requirements()


def make_units(count: int, machines: int, globals_: bool = True) -> dict[str, Requirements]:
    """Return ``count`` unit names -> rules, following the mix."""
    return dict(unit_rules(i, machines, globals_) for i in range(count))
