"""A unit's resource needs: CPU, memory and host ports (pure, no I/O).

Where a need comes from, for one unit file (:func:`needs`):

* **CPU**: ``[X-Fleet] CPU=`` (cores: ``0.5``, ``2``) if given, else systemd's own
  ``[Service] CPUQuota=`` read as CPUs (``50%`` is 0.5 CPU, ``150%`` is 1.5);
* **memory**: ``[X-Fleet] Memory=`` if given, else ``MemoryMax=``, else
  ``MemoryHigh=``; sizes as systemd parses them (a bare number is bytes, the
  suffixes K, M, G, T, P, E are powers of 1024, decimals allowed: ``1.5G``).
  ``infinity`` and percentages (relative to a machine not yet chosen) are no need;
* **host ports**: ``[X-Fleet] Ports=`` items (``@PORT``, ``@PORT_ADMIN`` ask for
  dynamic ports by name; ``80`` or ``80/udp`` is a fixed host port), plus what a
  container unit's ``ExecStart=`` publishes (``docker-run``, ``docker run`` or
  ``podman run`` with ``-p @PORT:5432``, ``-p 8080:80``) and every other ``@PORT…``
  token of that command line (``-e DBPORT=@PORT``);
* ``[X-Fleet] Placement=binpack`` ranks machines by the least room left instead
  of the most (``spread``, the default).

A malformed ``CPU=``/``Memory=``/``Ports=``/``Placement=`` value is refused at
submit with a message naming it (:func:`problems`); the systemd directives are
systemd's to refuse, and one that does not parse is simply no need.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

from unitctl.errors import InvalidOptionsError
from unitctl.model import Needs
from unitctl.unitfile import UnitFile

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = [
    "OPTIONS",
    "format_bytes",
    "format_cpu",
    "needs",
    "parse_cpu_quota",
    "parse_size",
    "port_names",
    "problems",
]

#: The ``[X-Fleet]`` options this module reads.
OPTIONS: tuple[str, ...] = ("CPU", "Memory", "Ports", "Placement")

_SECTION = "X-Fleet"
_SUFFIX = {"": 0, "B": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTPEB]?)\s*", re.IGNORECASE)
_PORT_NAME = re.compile(r"@(PORT(?:_[A-Z0-9]+)*)(?![A-Za-z0-9_])")
_FIXED = re.compile(r"([0-9]{1,5})(?:/(?:tcp|udp|sctp))?")
_ENGINES = ("docker", "podman")


def _decimal(text: str) -> Decimal | None:
    """``text`` as a Decimal, None if it is not one (``NaN``/``Infinity`` parse).

    decimal is imported by the first fraction read, not at import: an idle agent
    reads none (~0.4 MiB resident, issue 12 item 5).
    """
    from decimal import Decimal, InvalidOperation

    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def parse_size(text: str) -> int | None:
    """Bytes of a systemd size (``512M``, ``1.5G``, ``1048576``); None if it is none."""
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    scale: int = 1024 ** _SUFFIX[match[2].upper()]
    if match[1].isdigit():  # whole (the config's reserved_memory=0): no decimal needed
        return int(match[1]) * scale
    number = _decimal(match[1])
    return None if number is None else int(number * scale)


def parse_cpu_quota(text: str) -> int | None:
    """Thousandths of a CPU of a ``CPUQuota=`` value (``50%`` -> 500); None if none."""
    value = text.strip()
    if not value.endswith("%"):
        return None
    percent = _decimal(value[:-1])
    if percent is None:
        return None
    return int(percent * 10) if percent.is_finite() and percent > 0 else None


def _parse_cores(text: str) -> int | None:
    cores = _decimal(text.strip())
    if cores is None or not cores.is_finite() or cores <= 0:
        return None
    if cores != cores.quantize(type(cores)("0.001")):  # thousandths at most
        return None
    return int(cores * 1000)


def _last(unit: UnitFile, key: str) -> str | None:
    return unit.value(_SECTION, key)


def _service_last(unit: UnitFile, key: str) -> str | None:
    return unit.value("Service", key)


def _cpu(unit: UnitFile) -> int:
    given = _last(unit, "CPU")
    if given is not None:
        return _parse_cores(given) or 0
    quota = _service_last(unit, "CPUQuota")
    return (parse_cpu_quota(quota) or 0) if quota else 0


def _memory(unit: UnitFile) -> int:
    given = _last(unit, "Memory")
    if given is not None:
        return parse_size(given) or 0
    for key in ("MemoryMax", "MemoryHigh"):
        value = _service_last(unit, key)
        if value:
            return parse_size(value) or 0
    return 0


def _container_argvs(unit: UnitFile) -> list[list[str]]:
    """The ExecStart= command lines of the unit that run a container."""
    found: list[list[str]] = []
    for line in unit.values("Service", "ExecStart"):
        try:
            argv = shlex.split(line.lstrip("-@:+!"))
        except ValueError:
            continue
        if not argv:
            continue
        program = argv[0].rsplit("/", 1)[-1]
        if program == "docker-run" or (program in _ENGINES and "run" in argv[1:3]):
            found.append(argv)
    return found


def _published(argv: list[str]) -> list[str]:
    """The host side of every ``-p``/``--publish`` value of a container command."""
    values: list[str] = []
    for i, arg in enumerate(argv):
        if arg in ("-p", "--publish") and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith("--publish="):
            values.append(arg.partition("=")[2])
        elif arg.startswith("-p") and len(arg) > 2 and arg[2] != "-":
            values.append(arg[2:])
    hosts = []
    for value in values:
        parts = value.rsplit("/", 1)[0].rsplit("]", 1)[-1].split(":")
        if len(parts) >= 2 and parts[-2]:
            hosts.append(parts[-2])
    return hosts


def _fixed_values(host: str) -> list[int]:
    """The ports of a fixed host side (``80``, ``8000-8002``); [] if not fixed."""
    low, sep, high = host.partition("-")
    if not low.isdigit() or (sep and not high.isdigit()):
        return []
    first, last = int(low), int(high) if sep else int(low)
    return list(range(first, min(last, 65535) + 1)) if 0 < first <= last else []


def port_names(text: str) -> list[str]:
    """The ``@PORT…`` names in ``text`` (``-e DBPORT=@PORT_DB`` -> ``["PORT_DB"]``)."""
    return _PORT_NAME.findall(text)


def _ports(unit: UnitFile) -> tuple[tuple[str, ...], tuple[int, ...]]:
    dynamic: set[str] = set()
    fixed: set[int] = set()
    for item in _ports_items(unit):
        names = port_names(item)
        if names and f"@{names[0]}" == item:
            dynamic.add(names[0])
        elif _FIXED.fullmatch(item) and 0 < int(item.split("/")[0]) <= 65535:
            fixed.add(int(item.split("/")[0]))
    for argv in _container_argvs(unit):
        for arg in argv:
            dynamic.update(port_names(arg))
        for host in _published(argv):
            fixed.update(_fixed_values(host))
    return tuple(sorted(dynamic)), tuple(sorted(fixed))


def _ports_items(unit: UnitFile) -> list[str]:
    return [item for value in unit.values(_SECTION, "Ports") for item in value.split()]


def needs(unit: UnitFile) -> Needs:
    """What the unit takes from its machine (see the module docstring)."""
    dynamic, fixed = _ports(unit)
    placement = (_last(unit, "Placement") or "spread").strip().lower()
    return Needs(cpu_milli=_cpu(unit), mem_bytes=_memory(unit), dynamic_ports=dynamic,
                 fixed_ports=fixed, binpack=placement == "binpack")


def problems(name: str, unit: UnitFile) -> list[str]:
    """The malformed resource options of ``unit`` (empty when all are fine)."""
    found: list[str] = []
    cpu = _last(unit, "CPU")
    if cpu is not None and _parse_cores(cpu) is None:
        found.append(f"CPU {cpu!r} is not a positive number of CPUs such as 0.5 or 2 "
                     f"(at most 3 decimals)")
    memory = _last(unit, "Memory")
    if memory is not None and not parse_size(memory):
        found.append(f"Memory {memory!r} is not a size such as 512M or 2G (suffixes K, M, G, "
                     f"T: powers of 1024)")
    for item in _ports_items(unit):
        names = port_names(item)
        dynamic = bool(names) and f"@{names[0]}" == item
        fixed = _FIXED.fullmatch(item) is not None and 0 < int(item.split("/")[0]) <= 65535
        if not (dynamic or fixed):
            found.append(f"Ports {item!r} is neither a dynamic port (@PORT, @PORT_NAME with "
                         f"NAME in A-Z 0-9 _) nor a host port 1-65535")
    placement = _last(unit, "Placement")
    if placement is not None and placement.strip().lower() not in ("spread", "binpack"):
        found.append(f"Placement {placement!r} is neither spread nor binpack")
    return found


def check(name: str, unit: UnitFile) -> Needs:
    """:func:`needs`, after refusing malformed options (InvalidOptionsError naming them)."""
    found = problems(name, unit)
    if found:
        raise InvalidOptionsError(f"{name}: " + "; ".join(found))
    return needs(unit)


def format_bytes(n: int) -> str:
    """``536870912`` -> ``512 MiB``; ``1610612736`` -> ``1.5 GiB``."""
    for power, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        scale = 1024 ** power
        if n >= scale:
            text = f"{n / scale:.1f}".removesuffix(".0")
            return f"{text} {unit}"
    return f"{n} B"


def format_cpu(milli: int) -> str:
    """``500`` -> ``0.5``; ``2000`` -> ``2``."""
    return f"{milli / 1000:.3f}".rstrip("0").rstrip(".") or "0"
