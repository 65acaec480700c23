"""Synthetic clusters for the simulator and the benchmarks (pure, deterministic).

Machines carry ``region`` (us/eu/ap) and ``disk`` (ssd/hdd) metadata. Units
follow a fixed rule mix, by index ``i``:

* 10 % MachineMetadata (region, 3 % also disk=ssd);
* 5 % Conflicts: groups of instances ``db<g>@<i>`` that must spread;
* 5 % MachineOf: ``side-<i>`` follows ``app-<i+20>``;
* 1 % Global (every other one needs disk=ssd);
* 0.5 % MachineID: pinned to one machine (short id);
* the rest (~78 %) plain ``app-<i>`` units.

Global units are capped at ``max_globals`` (None: no cap): a global unit runs
on every machine, so 1 % of 100,000 units on 10,000 machines would be 7.5
million instances, a cost that grows as units x machines; past the cap those
buckets are plain ``app-<i>`` units.

With ``resources``, units also take CPU, memory and host ports (by ``i % 10``,
:func:`unit_needs`) and machines offer three sizes of capacity
(:func:`machine_capacity`), sized so that the cluster is about half full and a
small machine fits one big unit: placement by capacity binds, above all while
machines are down.
"""

from __future__ import annotations

from unitctl.model import UNLIMITED, Capacity, Machine, Needs, Requirements
from unitctl.record import replace

REGIONS = ("us", "eu", "ap")
DISKS = ("ssd", "hdd")
MIB = 1 << 20
GIB = 1 << 30
#: The fixed host ports the workload's units bind (units wanting one spread out).
FIXED_PORTS = (80, 443, 8080, 9090)


def machine_id(index: int) -> str:
    """The 32-hex id of machine ``index`` (its short id is unique up to 2**32)."""
    return f"{index:08x}" + "0" * 24


def machine_capacity(index: int) -> Capacity:
    """Machine ``index``'s capacity: 2, 4 or 8 CPUs with as many GiB (by ``index % 3``)."""
    size = 2 << (index % 3)
    return Capacity(cpu_milli=1000 * size, mem_bytes=size * GIB)


def make_machines(count: int, capacities: bool = False) -> dict[str, Machine]:
    """Return ``count`` machines with region/disk metadata (and capacities), by id."""
    out: dict[str, Machine] = {}
    for i in range(count):
        mid = machine_id(i)
        meta = {"region": REGIONS[i % 3], "disk": DISKS[(i // 3) % 2]}
        out[mid] = Machine(id=mid, public_ip=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                           metadata=meta,
                           capacity=machine_capacity(i) if capacities else UNLIMITED)
    return out


def unit_needs(i: int, is_global: bool = False, dynamic_ports: bool = True) -> Needs:
    """Unit ``i``'s needs: a global unit 50 m / 32 MiB; others by ``i % 10``: a big
    unit (1 CPU, 1.5 GiB), a medium one with a ``@PORT`` (250 m, 256 MiB), two
    ``@PORT``s, a fixed host port, or (6 in 10) nothing; no ``@PORT`` unless
    ``dynamic_ports``."""
    if is_global:
        return Needs(cpu_milli=50, mem_bytes=32 * MIB)
    kind = i % 10
    if kind == 0:
        return Needs(cpu_milli=1000, mem_bytes=1536 * MIB)
    if kind == 1:
        return Needs(cpu_milli=250, mem_bytes=256 * MIB,
                     dynamic_ports=("PORT",) if dynamic_ports else ())
    if kind == 2 and dynamic_ports:
        return Needs(dynamic_ports=("PORT", "PORT_ADMIN"))
    if kind == 3:
        return Needs(mem_bytes=128 * MIB, fixed_ports=(FIXED_PORTS[i // 10 % 4],))
    return Needs()


def unit_rules(i: int, machines: int, globals_: bool = True,
               max_globals: int | None = None) -> tuple[str, Requirements]:
    """Return the name and rules of unit ``i`` (see the module docs), without needs."""
    bucket = i % 200
    past_cap = max_globals is not None and 2 * (i // 200) + bucket - 40 >= max_globals
    if 40 <= bucket < 42 and past_cap:
        return f"app-{i}.service", Requirements()  # past the cap of global units
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


def make_units(count: int, machines: int, globals_: bool = True, resources: bool = False,
               max_globals: int | None = None, dynamic_ports: bool = True
               ) -> dict[str, Requirements]:
    """Return ``count`` unit names -> rules, following the mix (with needs if ``resources``)."""
    out: dict[str, Requirements] = {}
    for i in range(count):
        name, req = unit_rules(i, machines, globals_, max_globals)
        if resources:
            req = replace(req, needs=unit_needs(i, req.is_global, dynamic_ports))
        out[name] = req
    return out
