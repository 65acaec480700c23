"""The capacity ledger of one round: what each machine has left, and its host ports.

Every unit on a machine, global ones included, counts: its CPU and memory
needs, its fixed host ports, and the dynamic ports allocated to it
(:mod:`unitctl.ports`). A machine whose capacity is unknown (an old agent's
registration) is unlimited in CPU and memory; its ports are still counted.

Ports released in a round (a unit leaves the machine) stay blocked for the
rest of that round, so a port is only reused once the release is committed:
even if the leaving unit's write is refused (it changed meanwhile), no two
units hold one port. CPU and memory freed in a round are reused at once; the
engine's commit guards the units that take it by the revisions of the units
that free it (:mod:`unitctl.engine.commit`).
"""

from __future__ import annotations

from collections.abc import Mapping

from unitctl.model import Capacity, Machine, Needs
from unitctl.ports import Allocation, allocate, free_count
from unitctl.resources import format_bytes, format_cpu
from unitctl.scheduler.plan import PlacementReason

#: unit -> machine -> port name -> port
Allocations = Mapping[str, Mapping[str, Mapping[str, int]]]


class Ledger:
    """Per machine: CPU and memory in use, fixed ports, held dynamic ports."""

    def __init__(self, machines: Mapping[str, Machine], previous: Allocations) -> None:
        self.capacity: dict[str, Capacity] = {m: machines[m].capacity for m in machines}
        self.cpu: dict[str, int] = dict.fromkeys(machines, 0)
        self.mem: dict[str, int] = dict.fromkeys(machines, 0)
        self.fixed: dict[str, dict[int, str]] = {m: {} for m in machines}
        #: machine -> port -> the unit holding it (previous allocations included)
        self.held: dict[str, dict[int, str]] = {m: {} for m in machines}
        self.previous = previous
        #: the round's allocations: unit -> machine -> name -> port
        self.allocations: dict[str, dict[str, Allocation]] = {}
        for unit, per_machine in sorted(previous.items()):
            for machine, ports in per_machine.items():
                if machine in self.held:
                    for port in ports.values():
                        self.held[machine].setdefault(port, unit)

    def _taken(self, name: str, machine: str) -> set[int]:
        held = {p for p, owner in self.held[machine].items() if owner != name}
        return held | {p for p, owner in self.fixed[machine].items() if owner != name}

    def shortfall(self, name: str, needs: Needs, machine: str) -> str | None:
        """Why ``machine`` has no room for the unit, or None when it fits."""
        cap = self.capacity[machine]
        if cap.mem_bytes is not None and needs.mem_bytes:
            free = cap.mem_bytes - self.mem[machine]
            if needs.mem_bytes > free:
                return PlacementReason.NO_MEMORY.render(
                    need=format_bytes(needs.mem_bytes), free=format_bytes(max(free, 0)),
                    total=format_bytes(cap.mem_bytes))
        if cap.cpu_milli is not None and needs.cpu_milli:
            free = cap.cpu_milli - self.cpu[machine]
            if needs.cpu_milli > free:
                return PlacementReason.NO_CPU.render(
                    need=format_cpu(needs.cpu_milli), free=format_cpu(max(free, 0)),
                    total=format_cpu(cap.cpu_milli))
        return self._port_shortfall(name, needs, machine)

    def _port_shortfall(self, name: str, needs: Needs, machine: str) -> str | None:
        fixed, held = self.fixed[machine], self.held[machine]
        for port in needs.fixed_ports:
            owner = fixed.get(port) or held.get(port)
            if owner is not None and owner != name:
                return PlacementReason.PORT_TAKEN.render(port=port, unit=owner)
        if needs.dynamic_ports:
            port_range = self.capacity[machine].port_range
            previous = self.previous.get(name, {}).get(machine)
            taken = self._taken(name, machine) | set(needs.fixed_ports)
            if allocate(needs.dynamic_ports, port_range, taken, previous) is None:
                low, high = port_range
                return PlacementReason.NO_PORTS.render(
                    need=len(needs.dynamic_ports), free=free_count(port_range, taken),
                    range=f"{low}-{high}")
        return None

    def add(self, name: str, needs: Needs, machine: str) -> None:
        """Count a unit on a machine (after :meth:`shortfall` said it fits)."""
        self.cpu[machine] += needs.cpu_milli
        self.mem[machine] += needs.mem_bytes
        for port in needs.fixed_ports:
            self.fixed[machine].setdefault(port, name)
        if needs.dynamic_ports:
            previous = self.previous.get(name, {}).get(machine)
            taken = self._taken(name, machine) | set(needs.fixed_ports)
            got = allocate(needs.dynamic_ports, self.capacity[machine].port_range, taken,
                           previous)
            if got is not None:  # None only if the caller skipped shortfall()
                self.allocations.setdefault(name, {})[machine] = got
                for port in got.values():
                    self.held[machine][port] = name

    def remove(self, name: str, needs: Needs, machine: str) -> None:
        """Stop counting a unit on a machine; its dynamic ports stay held this round."""
        self.cpu[machine] -= needs.cpu_milli
        self.mem[machine] -= needs.mem_bytes
        fixed = self.fixed[machine]
        for port in needs.fixed_ports:
            if fixed.get(port) == name:
                del fixed[port]
        per_machine = self.allocations.get(name)
        if per_machine is not None:
            per_machine.pop(machine, None)
            if not per_machine:
                del self.allocations[name]

    def released(self) -> bool:
        """Tell whether a port held before the round is no longer held after it
        (it is free from the next round on)."""
        return any(self.allocations.get(unit, {}).get(machine) != dict(ports)
                   for unit, per_machine in self.previous.items()
                   for machine, ports in per_machine.items() if machine in self.held)

    def room_left(self, needs: Needs, machine: str) -> float:
        """The share of the machine's CPU and memory left after adding ``needs``
        (the mean over the counted resources; an uncounted one is all left)."""
        cap = self.capacity[machine]
        shares = [1.0 if cap.cpu_milli is None or cap.cpu_milli <= 0 else
                  (cap.cpu_milli - self.cpu[machine] - needs.cpu_milli) / cap.cpu_milli,
                  1.0 if cap.mem_bytes is None or cap.mem_bytes <= 0 else
                  (cap.mem_bytes - self.mem[machine] - needs.mem_bytes) / cap.mem_bytes]
        return sum(shares) / len(shares)

    def over(self, machine: str) -> bool:
        """Tell whether the machine is overcommitted (for invariant checks)."""
        cap = self.capacity[machine]
        return ((cap.cpu_milli is not None and self.cpu[machine] > cap.cpu_milli)
                or (cap.mem_bytes is not None and self.mem[machine] > cap.mem_bytes))
