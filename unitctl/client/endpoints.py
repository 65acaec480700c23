"""Where a started unit answers: its machine's address and the host ports it holds there.

``unitctl start`` prints, once a unit is active, one line per host port the
engine allocated to it (``Unit testdb.service on 10.0.0.2: PORT=31000``). The
ports come from the unit's schedule entry on its machine, the address from
that machine's registration: the same two records a service record is built
from.
"""

from __future__ import annotations

from collections.abc import Sequence

from unitctl.model import ScheduleEntry
from unitctl.registry.registry import Registry

#: Up to this many units, their own placement and schedule keys are read rather than
#: every unit's placement and each machine's schedule.
PER_UNIT_READS = 4


async def _placements(registry: Registry, names: Sequence[str]) -> dict[str, str]:
    if len(names) > PER_UNIT_READS:
        return await registry.list_placements()
    found: dict[str, str] = {}
    for name in names:
        key = registry.keys.placement(name)
        records, _ = await registry.records(key)
        found.update((name, r.value) for r in records if r.key == key and isinstance(r.value, str))
    return found


async def _entry(registry: Registry, machine_id: str, name: str) -> ScheduleEntry | None:
    """The unit's own schedule entry on its machine (one key, not the machine's schedule)."""
    record = await registry.record(registry.keys.scheduled(machine_id, name))
    return record.value if record is not None and isinstance(record.value, ScheduleEntry) \
        else None


async def _ported(registry: Registry, names: Sequence[str], placements: dict[str, str],
                  ) -> list[tuple[str, str, tuple[tuple[str, int], ...]]]:
    """(unit, machine, ports) of the units of ``names`` whose schedule entry holds ports:
    for a few units their own entries, else each machine's schedule read once (a
    machine may hold thousands of units; a ``start`` of one reads one key)."""
    schedules: dict[str, dict[str, ScheduleEntry]] = {}
    found: list[tuple[str, str, tuple[tuple[str, int], ...]]] = []
    for name in names:
        machine_id = placements.get(name)
        if machine_id is None:
            continue
        if len(names) <= PER_UNIT_READS:
            entry = await _entry(registry, machine_id, name)
        else:
            if machine_id not in schedules:
                schedules[machine_id] = dict((await registry.get_schedule(machine_id))[0])
            entry = schedules[machine_id].get(name)
        if entry is not None and entry.ports:
            found.append((name, machine_id, tuple(entry.ports)))
    return found


async def endpoint_lines(registry: Registry, names: Sequence[str]) -> list[str]:
    """One line per unit of ``names`` that holds host ports on a registered machine,
    naming host and ports. The machines are read only when some unit holds ports
    (a start of units without ports reads placements and schedules alone)."""
    ported = await _ported(registry, names, await _placements(registry, names))
    if not ported:
        return []
    machines = {m.id: m for m in await registry.list_machines()}
    lines: list[str] = []
    for name, machine_id, ports in ported:
        if machine_id not in machines:
            continue
        host = machines[machine_id].public_ip or machine_id[:8]
        pairs = " ".join(f"{var}={port}" for var, port in ports)
        lines.append(f"Unit {name} on {host}: {pairs}")
    return lines
