"""Volumes: storage a unit keeps across restarts, local to a machine or on a shared store (pure).

A unit asks for a named volume with ``[X-Fleet] Volume=NAME:SIZE:PATH``
(``Volume=pgdata:1G:/var/lib/pgsql/data``; several lines for several volumes;
an empty ``Volume=`` resets the list), or ``Volume=NAME:SIZE:PATH:shared=STORE``
for a volume on shared storage. Contract:

* NAME and STORE are ``[A-Za-z0-9][A-Za-z0-9_.-]*``, at most 64 characters
  (NAME is cluster-wide); SIZE is a positive number of bytes with an optional
  K/M/G/T suffix (powers of 1024); PATH is an absolute, normalised path inside
  the unit (no ``..``, no ``:`` and no white space, as systemd's ``BindPaths=``
  reads them);
* **local** volume: the agent of the machine the unit first lands on makes the
  directory :func:`volume_dir` once and reuses it on every restart, binds it
  into the unit with a drop-in (:func:`dropin_text`, ``BindPaths=``) and records
  it as a :class:`VolumeRecord` naming that machine (``volumes/<name>`` in etcd,
  no lease: the record outlives the machine); the unit is then pinned to that
  machine (:func:`pins`) until ``unitctl volume rm NAME``;
* **losing a local volume's machine**: by default the unit waits for that machine
  (it stays pinned while the machine is not registered). With
  ``[X-Fleet] MoveWithoutVolume=yes`` (:data:`MOVE_OPTION`, :func:`parse_move`)
  it is unpinned while the machine holding its volume is not registered
  (:func:`split_pins`) and placed by its other rules, **without its data** (which
  stays on the lost machine); the agent of the new machine makes the volume there
  and takes the record over (compare-and-swap on the record's revision, only while
  the old machine is still not registered), so the record never names two machines
  and the unit does not move back when the old machine returns;
* **shared** volume: a machine declares a shared store with the metadata pair
  ``storage.STORE=/mount/point`` (:func:`stores_of`), meaning "the same storage
  is mounted there on every machine that declares STORE". The unit runs only
  on machines that declare every store its volumes use (:func:`missing_store`),
  anywhere among them; the agent uses ``<mount>/unitctl-volumes/<name>``
  (:func:`shared_dir`), made once by the first machine, and the record names the
  store instead of a machine (it pins nothing);
* the size is **recorded, not enforced**.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Container, Iterable, Mapping

from unitctl.record import Frozen, init

#: The ``[X-Fleet]`` option.
OPTION = "Volume"

#: The ``[X-Fleet]`` option that lets a unit with a local volume move without it when
#: the volume's machine is lost (``yes``/``no``, as ``[X-Failover] Move=``; default no).
MOVE_OPTION = "MoveWithoutVolume"

#: Where an agent keeps the local volumes of its machine.
VOLUMES_ROOT = "/var/lib/unitctl/volumes"

#: The machine metadata key prefix that declares a shared store: ``storage.STORE``.
STORE_KEY_PREFIX = "storage."

#: The directory, below a shared store's mount point, that holds unitctl's volumes.
SHARED_SUBDIR = "unitctl-volumes"

#: The drop-in an agent writes beside a unit that has volumes.
DROPIN_NAME = "60-unitctl-volumes.conf"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SIZE = re.compile(r"([0-9]{1,15})([KMGT]?)")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SHARED = "shared="
_YES = frozenset({"yes", "true", "1", "on"})
_NO = frozenset({"no", "false", "0", "off"})


class Volume(Frozen):
    """One volume a unit asks for: its name, size in bytes, mount path and shared
    store (``""``: a local volume)."""

    __slots__ = ("name", "path", "size", "store")
    name: str
    size: int
    path: str
    store: str

    def __init__(self, name: str, size: int, path: str, store: str = "") -> None:
        init(self, name, size, path, store)


class VolumeRecord(Frozen):
    """Where a volume lives: its machine (local) or its store (shared, machine ``""``),
    the directory there, its recorded size and its owning unit; ``left_on`` names
    the machine where an older copy of its data stayed when the unit moved without
    it (``MoveWithoutVolume=yes``; ``""`` when none)."""

    __slots__ = ("left_on", "machine", "name", "path", "size", "store", "unit")
    name: str
    machine: str
    path: str
    size: int
    unit: str
    store: str
    left_on: str

    def __init__(self, name: str, machine: str, path: str, size: int, unit: str, store: str = "",
                 left_on: str = "") -> None:
        init(self, name, machine, path, size, unit, store, left_on)

    def encode(self) -> bytes:
        where = {"store": self.store} if self.store else {"machine": self.machine}
        left = {"left_on": self.left_on} if self.left_on else {}
        return json.dumps({**where, "path": self.path, "size": self.size, "unit": self.unit,
                           **left}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, name: str, data: bytes) -> VolumeRecord:
        """The record stored under ``volumes/<name>``; ValueError when it is not one."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or not valid_name(name):
            raise ValueError("not a volume record")
        machine, store = raw.get("machine", ""), raw.get("store", "")
        path, size, unit = (raw.get(k) for k in ("path", "size", "unit"))
        left_on = raw.get("left_on", "")
        if not (isinstance(machine, str) and isinstance(store, str)
                and bool(machine) != bool(store) and (not store or valid_name(store))
                and isinstance(path, str)
                and isinstance(size, int) and not isinstance(size, bool) and size > 0
                and isinstance(unit, str) and unit and isinstance(left_on, str)):
            raise ValueError("bad fields in a volume record")
        return cls(name, machine, path, size, unit, store, left_on)


def valid_name(name: str) -> bool:
    """Whether ``name`` is a volume (or store) name (safe as one path component)."""
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


def bindable_path(path: str) -> bool:
    """Whether ``path`` is absolute, normalised, not ``/`` and free of white space
    and ``:`` (what ``BindPaths=`` can carry)."""
    return (path.startswith("/") and posixpath.normpath(path) == path and path != "/"
            and not any(c.isspace() for c in path) and ":" not in path
            and "/../" not in f"{path}/")


def _store(value: str, rest: list[str]) -> str:
    """The STORE of a ``Volume=`` value's optional ``shared=STORE`` field (``""``: none)."""
    if not rest:
        return ""
    if not rest[0].startswith(_SHARED) or not valid_name(rest[0][len(_SHARED):]):
        raise ValueError(f"Volume={value!r}: {rest[0]!r} is not shared=STORE (a store name "
                         "[A-Za-z0-9][A-Za-z0-9_.-]*)")
    return rest[0][len(_SHARED):]


def parse_volume(value: str) -> Volume:
    """``NAME:SIZE:PATH[:shared=STORE]`` → a :class:`Volume`; ValueError naming the problem."""
    parts = value.split(":")
    if len(parts) not in (3, 4):
        raise ValueError(f"Volume={value!r} is not NAME:SIZE:PATH "
                         "or NAME:SIZE:PATH:shared=STORE")
    name, size, path, *rest = parts
    store = _store(value, rest)
    if not valid_name(name):
        raise ValueError(f"Volume name {name!r} is not [A-Za-z0-9][A-Za-z0-9_.-]* "
                         "(at most 64 characters)")
    if not bindable_path(path):
        raise ValueError(f"Volume path {path!r} is not an absolute, normalised path "
                         "without white space")
    return Volume(name, parse_size(size), path, store)


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


def parse_move(values: Iterable[str]) -> bool:
    """Whether ``MoveWithoutVolume=`` items ``values`` let the unit move without its
    local volumes (the last item counts; none: no); ValueError for a non-boolean."""
    items = list(values)
    if not items:
        return False
    last = items[-1].lower()
    if last not in _YES | _NO:
        raise ValueError(f"{MOVE_OPTION}={items[-1]!r}: use yes or no")
    return last in _YES


def move_problems(values: Iterable[str]) -> list[str]:
    """The problem with the unit's ``MoveWithoutVolume=`` items, or none."""
    bad = [v for v in values if v.lower() not in _YES | _NO]
    return [f"{MOVE_OPTION}={bad[0]!r}: use yes or no"] if bad else []


def store_needs(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(store, volume) for each shared volume among ``values``, sorted (bad items skipped:
    validation names them)."""
    found = set()
    for value in values:
        try:
            volume = parse_volume(value)
        except ValueError:
            continue
        if volume.store:
            found.add((volume.store, volume.name))
    return tuple(sorted(found))


def stores_of(metadata: Mapping[str, str]) -> dict[str, str]:
    """store → mount point, from a machine's ``storage.STORE=/mount/point`` pairs
    (a pair with a bad store name or a path ``BindPaths=`` cannot carry is no store)."""
    out = {}
    for key, value in metadata.items():
        store = key[len(STORE_KEY_PREFIX):]
        if key.startswith(STORE_KEY_PREFIX) and valid_name(store) and bindable_path(value):
            out[store] = value
    return out


def missing_store(needs: Iterable[tuple[str, str]],
                  metadata: Mapping[str, str]) -> tuple[str, str] | None:
    """The first (store, volume) of ``needs`` the machine with ``metadata`` does not
    declare, or None when it declares them all."""
    have = stores_of(metadata)
    return next(((s, v) for s, v in needs if s not in have), None)


def volume_dir(name: str, root: str = VOLUMES_ROOT) -> str:
    """The directory of local volume ``name`` on its machine."""
    if not valid_name(name):
        raise ValueError(f"bad volume name {name!r}")
    return posixpath.join(root, name)


def shared_dir(name: str, mount: str) -> str:
    """The directory of shared volume ``name`` on a store mounted at ``mount``."""
    return volume_dir(name, posixpath.join(mount, SHARED_SUBDIR))


def dropin_text(volumes: Iterable[Volume], root: str = VOLUMES_ROOT,
                mounts: Mapping[str, str] | None = None) -> str:
    """The drop-in binding each volume's directory into the unit at its path (a shared
    volume's store must be in ``mounts``, store → mount point)."""
    def where(v: Volume) -> str:
        return shared_dir(v.name, (mounts or {})[v.store]) if v.store else volume_dir(v.name, root)
    lines = "".join(f"BindPaths={where(v)}:{v.path}\n"
                    for v in sorted(volumes, key=lambda v: v.name))
    return ("# Written by unitctl-agent: the unit's volumes on this machine\n"
            f"# (the size is recorded, not enforced).\n[Service]\n{lines}")


def pins(records: Mapping[str, VolumeRecord]) -> dict[str, tuple[str, str]]:
    """unit → (machine, volume) it must run on: its first local volume by name (a shared
    volume's record pins nothing)."""
    out: dict[str, tuple[str, str]] = {}
    for name in sorted(records):
        record = records[name]
        if not record.store:
            out.setdefault(record.unit, (record.machine, name))
    return out


def split_pins(volume_pins: Mapping[str, tuple[str, str]], may_move: Callable[[str], bool],
               alive: Container[str]
               ) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    """(the pins that hold, the units that move without their volume): a unit that
    ``may_move`` (``MoveWithoutVolume=yes``) whose volume's machine is not ``alive``
    is not pinned and leaves its (machine, volume) behind; every other pin holds."""
    held: dict[str, tuple[str, str]] = {}
    left: dict[str, tuple[str, str]] = {}
    for unit, pin in volume_pins.items():
        if pin[0] not in alive and may_move(unit):
            left[unit] = pin
        else:
            held[unit] = pin
    return held, left


def mount_points(mountinfo: str) -> frozenset[str]:
    """The mount points listed in ``/proc/self/mountinfo`` text (octal escapes decoded)."""
    found = set()
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            found.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4]))
    return frozenset(found)
