"""Dynamic host-port allocation on one machine (pure, no I/O).

A unit asks for host ports by name (``PORT``, ``PORT_ADMIN``: :mod:`unitctl.resources`).
:func:`allocate` gives each name a port of the machine's range that no other
unit there holds, keeping the ports the unit already has there (stable across
restarts), and taking the lowest free ones otherwise, so the outcome depends
only on its input. The scheduler calls it inside one round, over one view of
every allocation, and a port is never given twice on a machine
(``tests/unit/test_ports.py``).

An allocation is stored with the unit's schedule entry on that machine
(:class:`~unitctl.model.ScheduleEntry` ``ports``), which is what its agent reads;
with the machine's ``public_ip`` it is everything a service record needs
(name -> address and ports).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

Allocation = dict[str, int]


def free_count(port_range: tuple[int, int], taken: Collection[int]) -> int:
    """How many ports of ``port_range`` (inclusive) are not in ``taken``."""
    low, high = port_range
    return max(0, high - low + 1) - sum(1 for p in set(taken) if low <= p <= high)


def allocate(names: Collection[str], port_range: tuple[int, int], taken: Collection[int],
             previous: Mapping[str, int] | None = None) -> Allocation | None:
    """Give each of ``names`` a port of ``port_range``, none of them in ``taken``.

    Args:
        names: the port names the unit asks for.
        port_range: the machine's inclusive range.
        taken: the ports other units hold on the machine (their allocations and
            their fixed host ports).
        previous: what the unit held there before; a name keeps its port while
            that port is in the range and not taken by another unit.

    Returns:
        name -> port for every name, no two names with one port; None when the
        range has too few free ports.
    """
    low, high = port_range
    blocked = set(taken)
    out: Allocation = {}
    for name in sorted(names):
        port = (previous or {}).get(name)
        if port is not None and low <= port <= high and port not in blocked:
            out[name] = port
            blocked.add(port)
    candidate = low
    for name in sorted(n for n in names if n not in out):
        while candidate <= high and candidate in blocked:
            candidate += 1
        if candidate > high:
            return None
        out[name] = candidate
        blocked.add(candidate)
    return out


#: The drop-in an agent writes beside a unit that has host ports.
DROPIN_NAME = "50-unitctl-ports.conf"


def dropin_ports(text: str) -> tuple[tuple[str, int], ...]:
    """The ports a drop-in written by :func:`dropin_text` passes in, sorted by name
    (a line that is not ``NAME=PORT`` is left out)."""
    found: list[tuple[str, int]] = []
    for line in text.splitlines():
        if not line.startswith("Environment="):
            continue
        for pair in line[len("Environment="):].split():
            name, sep, port = pair.partition("=")
            if sep and port.isdigit():
                found.append((name, int(port)))
    return tuple(sorted(found))


def dropin_text(ports: Collection[tuple[str, int]]) -> str:
    """The drop-in passing ``ports`` in as environment variables (``PORT=31000``)."""
    pairs = " ".join(f"{name}={port}" for name, port in sorted(ports))
    return ("# Written by unitctl-agent: the host ports the engine allocated to this unit\n"
            f"# on this machine.\n[Service]\nEnvironment={pairs}\n")
