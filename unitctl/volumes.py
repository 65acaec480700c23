"""Local volumes: storage a unit keeps across restarts, on the machine it was made on (pure).

A unit asks for a named volume with ``[X-Fleet] Volume=NAME:SIZE:PATH``
(``Volume=pgdata:1G:/var/lib/pgsql/data``; several lines for several volumes;
an empty ``Volume=`` resets the list). Contract:

* NAME is cluster-wide: ``[A-Za-z0-9][A-Za-z0-9_.-]*``, at most 64 characters;
  SIZE is a positive number of bytes with an optional K/M/G/T suffix (powers
  of 1024); PATH is an absolute, normalised path inside the unit (no ``..``,
  no ``:`` and no white space, as systemd's ``BindPaths=`` reads them);
* the agent of the machine the unit first lands on makes the directory
  :func:`volume_dir` once and reuses it on every restart; it binds it into the
  unit with a drop-in (:func:`dropin_text`, ``BindPaths=``) and records the
  volume as a :class:`VolumeRecord` (``volumes/<name>`` in etcd, not under a
  lease: the record outlives the machine);
* the size is **recorded, not enforced**, unless the directory is on a
  filesystem with project quotas (nspawn machines get no loop devices, so no
  sized filesystem image);
* a unit that owns a record is pinned to the record's machine
  (:func:`pins`) for as long as the record exists: when that machine is lost,
  the unit waits for it; ``unitctl volume rm NAME`` removes the record and
  lets the unit move (its data stays behind on the old machine).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: The ``[X-Fleet]`` option.
OPTION = "Volume"

#: Where an agent keeps the volumes of its machine.
VOLUMES_ROOT = "/var/lib/unitctl/volumes"

#: The drop-in an agent writes beside a unit that has volumes.
DROPIN_NAME = "60-unitctl-volumes.conf"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SIZE = re.compile(r"([0-9]{1,15})([KMGT]?)")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True, slots=True)
class Volume:
    """One volume a unit asks for: its name, size in bytes and mount path."""

    name: str
    size: int
    path: str


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    """Where a volume lives: machine, directory there, recorded size, owning unit."""

    name: str
    machine: str
    path: str
    size: int
    unit: str

    def encode(self) -> bytes:
        return json.dumps({"machine": self.machine, "path": self.path, "size": self.size,
                           "unit": self.unit}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, name: str, data: bytes) -> VolumeRecord:
        """The record stored under ``volumes/<name>``; ValueError when it is not one."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or not valid_name(name):
            raise ValueError("not a volume record")
        machine, path, size, unit = (raw.get(k) for k in ("machine", "path", "size", "unit"))
        if not (isinstance(machine, str) and machine and isinstance(path, str)
                and isinstance(size, int) and not isinstance(size, bool) and size > 0
                and isinstance(unit, str) and unit):
            raise ValueError("bad fields in a volume record")
        return cls(name, machine, path, size, unit)


def valid_name(name: str) -> bool:
    """Whether ``name`` is a volume name (safe as one path component)."""
    return _NAME.fullmatch(name) is not None


def parse_size(text: str) -> int:
    """``128M`` → 134217728; ValueError for anything else (zero too)."""
    match = _SIZE.fullmatch(text.upper())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"size {text!r} is not a positive size like 128M or 1G")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_size(size: int) -> str:
    """The largest exact suffix: 134217728 → ``128M``."""
    for suffix in ("T", "G", "M", "K"):
        if size % _UNITS[suffix] == 0:
            return f"{size // _UNITS[suffix]}{suffix}"
    return str(size)


def parse_volume(value: str) -> Volume:
    """``NAME:SIZE:PATH`` → a :class:`Volume`; ValueError naming the problem."""
    parts = value.split(":")
    if len(parts) != 3:
        raise ValueError(f"Volume={value!r} is not NAME:SIZE:PATH")
    name, size, path = parts
    if not valid_name(name):
        raise ValueError(f"Volume name {name!r} is not [A-Za-z0-9][A-Za-z0-9_.-]* "
                         "(at most 64 characters)")
    if not path.startswith("/") or posixpath.normpath(path) != path or path == "/" \
            or any(c.isspace() for c in path) or "/../" in f"{path}/":
        raise ValueError(f"Volume path {path!r} is not an absolute, normalised path "
                         "without white space")
    return Volume(name, parse_size(size), path)


def parse_volumes(values: Iterable[str]) -> tuple[Volume, ...]:
    """Every value parsed (ValueError on the first bad one, or a name or path twice)."""
    volumes = tuple(parse_volume(v) for v in values)
    for field in ("name", "path"):
        seen = [getattr(v, field) for v in volumes]
        twice = sorted({s for s in seen if seen.count(s) > 1})
        if twice:
            raise ValueError(f"Volume {field} {twice[0]!r} is given twice")
    return volumes


def problems(values: Iterable[str]) -> list[str]:
    """The problem with ``values`` (the unit's ``Volume=`` items), or none."""
    try:
        parse_volumes(values)
    except ValueError as exc:
        return [str(exc)]
    return []


def volume_dir(name: str, root: str = VOLUMES_ROOT) -> str:
    """The directory of volume ``name`` on its machine."""
    if not valid_name(name):
        raise ValueError(f"bad volume name {name!r}")
    return posixpath.join(root, name)


def dropin_text(volumes: Iterable[Volume], root: str = VOLUMES_ROOT) -> str:
    """The drop-in binding each volume's directory into the unit at its path."""
    lines = "".join(f"BindPaths={volume_dir(v.name, root)}:{v.path}\n"
                    for v in sorted(volumes, key=lambda v: v.name))
    return ("# Written by unitctl-agent: the unit's local volumes on this machine\n"
            f"# (the size is recorded, not enforced).\n[Service]\n{lines}")


def pins(records: Mapping[str, VolumeRecord]) -> dict[str, tuple[str, str]]:
    """unit → (machine, volume) it must run on: its first volume by name."""
    out: dict[str, tuple[str, str]] = {}
    for name in sorted(records):
        record = records[name]
        out.setdefault(record.unit, (record.machine, name))
    return out
