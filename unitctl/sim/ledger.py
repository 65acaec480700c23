"""What runs where, as every simulated systemd records it: the index the per-tick checks read.

Each machine's :class:`~unitctl.sim.systemd.SimSystemd` reports every unit
that starts or stops on it (:meth:`RunLedger.started`, :meth:`RunLedger.stopped`);
the ledger keeps, from those records alone (never from the schedule):

* unit -> the machines running it;
* machine -> the CPU and memory its running units take (their declared
  needs), and host port -> the running units bound to it: the unit's fixed
  ports and the dynamic ports its drop-in passed in *when it started*;
* the units and machines touched since the last check.

So the checks after every tick look only at what changed in that tick
(:meth:`take_touched`), and a violation is seen at the tick it appears: a
unit on two machines, a machine over its capacity, a port held twice. Once
stable, :func:`unitctl.sim.invariants.check_ledger` recounts everything from
the machines' records and compares, so the index itself is checked too.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from unitctl.model import Needs

#: A unit's dynamic ports as its drop-in passes them in: ((name, port), ...).
PortEnv = tuple[tuple[str, int], ...]


class RunLedger:
    """The running units of every simulated machine, with the resources they hold."""

    def __init__(self, needs_of: Callable[[str], Needs]) -> None:
        self.needs_of = needs_of
        #: unit -> machines running it
        self.where: dict[str, set[str]] = {}
        #: machine -> thousandths of a CPU / bytes of memory its running units need
        self.cpu: dict[str, int] = {}
        self.mem: dict[str, int] = {}
        #: machine -> host port -> the running units bound to it
        self.ports: dict[str, dict[int, list[str]]] = {}
        #: (machine, unit) -> the host ports the unit bound when it started
        self.bound: dict[tuple[str, str], tuple[int, ...]] = {}
        self.touched_units: set[str] = set()
        self.touched_machines: set[str] = set()

    def started(self, machine: str, name: str, env: PortEnv) -> None:
        """Unit ``name`` started on ``machine`` with the dynamic ports ``env``."""
        needs = self.needs_of(name)
        self.where.setdefault(name, set()).add(machine)
        self.cpu[machine] = self.cpu.get(machine, 0) + needs.cpu_milli
        self.mem[machine] = self.mem.get(machine, 0) + needs.mem_bytes
        ports = (*needs.fixed_ports, *(port for _, port in env))
        self.bound[(machine, name)] = ports
        held = self.ports.setdefault(machine, {})
        for port in ports:
            held.setdefault(port, []).append(name)
        self.touched_units.add(name)
        self.touched_machines.add(machine)

    def stopped(self, machine: str, name: str) -> None:
        """Unit ``name`` stopped on ``machine`` (it was running there)."""
        needs = self.needs_of(name)
        machines = self.where[name]
        machines.discard(machine)
        if not machines:
            del self.where[name]
        self.cpu[machine] -= needs.cpu_milli
        self.mem[machine] -= needs.mem_bytes
        held = self.ports[machine]
        for port in self.bound.pop((machine, name)):
            holders = held[port]
            holders.remove(name)
            if not holders:
                del held[port]
        self.touched_units.add(name)
        self.touched_machines.add(machine)

    def take_touched(self) -> tuple[list[str], list[str]]:
        """The units and machines touched since the last call (sorted), and forget them."""
        units, machines = sorted(self.touched_units), sorted(self.touched_machines)
        self.touched_units.clear()
        self.touched_machines.clear()
        return units, machines

    def twice_held(self, machine: str) -> dict[int, list[str]]:
        """The host ports of ``machine`` that more than one running unit holds."""
        return {p: sorted(us) for p, us in sorted(self.ports.get(machine, {}).items())
                if len(us) > 1}
