"""What this machine offers to units: its CPUs and memory, less the agent's reserve.

Measured once, when the agent starts, and reported with its registration
(:class:`~unitctl.model.Capacity`):

* CPUs: the CPUs the agent may run on (``sched_getaffinity``), or fewer when a
  cgroup ``cpu.max`` quota above the units is tighter;
* memory: ``MemTotal`` of ``/proc/meminfo``, or less when a cgroup
  ``memory.max`` above the units is tighter.

The cgroups read are those units run under, as systemd sees them: the root
of the cgroup tree this systemd manages (inside an nspawn machine that is the
machine's own cgroup, with the limits nspawn or its host put on it) and
``system.slice``. The agent's own service cgroup is not read: a limit on the
agent is not a limit on its units. Then ``reserved_cpu`` and ``reserved_memory``
are taken off (never below zero).
"""

from __future__ import annotations

import os

from unitctl.model import Capacity

CGROUP_ROOT = "/sys/fs/cgroup"
_UNIT_CGROUPS = ("", "system.slice")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def cpu_milli(root: str = CGROUP_ROOT) -> int:
    """Thousandths of the CPUs units can use here."""
    try:
        found = len(os.sched_getaffinity(0)) * 1000
    except (AttributeError, OSError):
        found = (os.cpu_count() or 1) * 1000
    for cgroup in _UNIT_CGROUPS:
        text = _read(os.path.join(root, cgroup, "cpu.max"))
        parts = (text or "").split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[1]):
            found = min(found, int(parts[0]) * 1000 // int(parts[1]))
    return found


def memory_bytes(root: str = CGROUP_ROOT, meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes of memory units can use here; None when nothing can be read."""
    found: int | None = None
    for line in (_read(meminfo) or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "MemTotal:" and fields[1].isdigit():
            found = int(fields[1]) * 1024
    for cgroup in _UNIT_CGROUPS:
        text = _read(os.path.join(root, cgroup, "memory.max"))
        if text and text.isdigit():
            found = int(text) if found is None else min(found, int(text))
    return found


def measure(reserved_cpu_milli: int, reserved_memory: int,
            port_range: tuple[int, int]) -> Capacity:
    """This machine's capacity for units, less the reserve."""
    memory = memory_bytes()
    return Capacity(max(0, cpu_milli() - reserved_cpu_milli),
                    None if memory is None else max(0, memory - reserved_memory), port_range)
