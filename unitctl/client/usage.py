"""What the units scheduled on each machine take from it: CPU, memory, host ports.

The read model of ``list-machines``' capacity columns. It reads every
machine's schedule and the bodies it names, and adds up their needs
(:func:`unitctl.resources.needs`), global units included, as the scheduler
counts them. Read only when one of those columns is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from unitctl.errors import InvalidUnitError
from unitctl.registry.registry import Registry
from unitctl.resources import needs
from unitctl.unitfile import UnitFile


@dataclass(frozen=True, slots=True)
class Usage:
    """What one machine's units take: CPU (thousandths), memory (bytes), host ports."""

    cpu_milli: int = 0
    mem_bytes: int = 0
    #: "PORT=31000 (web.service)" and fixed "80 (proxy.service)", sorted by port
    ports: tuple[tuple[int, str], ...] = ()


async def machine_usage(registry: Registry) -> dict[str, Usage]:
    """machine id -> what its scheduled units take."""
    schedules = await registry.list_schedules()
    shas = {e.hash for entries in schedules.values() for e in entries.values()}
    bodies = await registry.get_bodies_by_hash(sorted(shas))
    found: dict[str, Usage] = {}
    for machine, entries in schedules.items():
        cpu = mem = 0
        ports: list[tuple[int, str]] = []
        for name, entry in sorted(entries.items()):
            try:
                unit_needs = needs(UnitFile.parse(bodies.get(entry.hash, "")))
            except InvalidUnitError:
                continue
            cpu += unit_needs.cpu_milli
            mem += unit_needs.mem_bytes
            ports += [(p, f"{p} ({name})") for p in unit_needs.fixed_ports]
            ports += [(p, f"{var}={p} ({name})") for var, p in entry.ports]
        found[machine] = Usage(cpu, mem, tuple(sorted(ports)))
    return found
