"""confd's template functions over one snapshot of the keys (pure).

A :class:`Snapshot` is what one render reads: the data keys under the
resource's prefixes (paths relative to ``<prefix>data``, as confd's keys are
relative to its ``prefix``) and where the units it names run, all taken before
rendering starts, so a template never sees the store change under it (confd
read its backend while rendering). :class:`Functions` are the globals a
template calls, with confd's semantics:

* ``getv(key[, default])`` the value; a missing key without a default is an error;
* ``getvs(pattern)`` the values of the keys matching ``pattern`` (Go's
  ``path.Match``, as confd), sorted by key; ``gets(pattern)`` the pairs
  (``.key``/``.value``, or confd's ``.Key``/``.Value``); ``get(key)`` one
  pair (error when missing); ``exists(key)``;
* ``ls(path)`` the names directly under ``path``; ``lsdir(path)`` only those
  that have keys under them; both empty when nothing is there;
* ``json(text)``, ``jsonArray(text)``, ``base(path)``, ``dir(path)``;
* ``units(glob[, state])``: where units matching ``glob`` run, from the
  machines' own reports (``states/``): one :class:`UnitPlace` per unit and
  machine whose ``active`` is ``state`` (default ``"active"``; ``None``: any).

A key outside the resource's ``keys`` (or a glob not in its ``units``) is an
error naming it: the agent only watches what a resource declares. Every list
read is checked against ``min_entries`` (by its argument, as written):
fewer entries than required raises :class:`HeldBack` and nothing is written.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from unitctl.glob import matches_glob


class TemplateReadError(Exception):
    """A read the template made cannot be answered (missing key, undeclared prefix)."""


class HeldBack(Exception):
    """A list read returned fewer entries than ``min_entries`` requires."""


@dataclass(frozen=True, slots=True)
class KVPair:
    """One data key (relative path) and its value; ``Key``/``Value`` as confd spells them."""

    key: str
    value: str

    @property
    def Key(self) -> str:  # confd's name
        return self.key

    @property
    def Value(self) -> str:  # confd's name
        return self.value


@dataclass(frozen=True, slots=True)
class UnitPlace:
    """One unit on one machine, as that machine's agent reports it."""

    unit: str
    machine: str
    ip: str
    active: str
    sub: str

    @property
    def instance(self) -> str:
        """The instance of a template unit (``8080`` of ``web@8080.service``), else ""."""
        prefix, at, rest = self.unit.partition("@")
        return rest.rpartition(".")[0] if at and prefix else ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The keys one render reads, and the revision they were read at."""

    data: Mapping[str, str]
    places: tuple[UnitPlace, ...] = ()
    revision: int = 0


def normalize(key: str) -> str:
    """``/hosts/`` and ``hosts`` → ``/hosts``; the root stays ``/``."""
    return "/" + key.strip("/")


def under(key: str, prefix: str) -> bool:
    prefix = normalize(prefix)
    return prefix == "/" or key == prefix or key.startswith(prefix + "/")


class Functions:
    """The template globals over one snapshot, for one resource's declared reads."""

    def __init__(self, snapshot: Snapshot, keys: tuple[str, ...], units: tuple[str, ...],
                 min_entries: Mapping[str, int]) -> None:
        self.snapshot = snapshot
        self.keys = keys
        self.unit_globs = units
        self.min_entries = min_entries
        #: every list read: argument -> entries returned (the status shows the guards' counts)
        self.counts: dict[str, int] = {}

    def table(self) -> dict[str, Callable[..., Any]]:
        return {"getv": self.getv, "getvs": self.getvs, "gets": self.gets, "get": self.get,
                "exists": self.exists, "ls": self.ls, "lsdir": self.lsdir,
                "json": json_value, "jsonArray": json_array, "base": posixpath.basename,
                "dir": posixpath.dirname, "units": self.units}

    def _declared(self, key: str) -> str:
        key = normalize(key)
        if not any(under(key, p) or under(p, key) for p in self.keys):
            raise TemplateReadError(f"{key} is not under the template's keys "
                                    f"({', '.join(self.keys) or 'none'}): add it to keys")
        return key

    def _guard(self, arg: str, found: int) -> None:
        self.counts[arg] = found
        wanted = self.min_entries.get(arg)
        if wanted is not None and found < wanted:
            raise HeldBack(f"min_entries: {arg} has {found} entries, {wanted} required")

    def getv(self, key: str, default: str | None = None) -> str:
        key = self._declared(key)
        value = self.snapshot.data.get(key, default)
        if value is None:
            raise TemplateReadError(f"key not found: {key}")
        return value

    def get(self, key: str) -> KVPair:
        return KVPair(normalize(key), self.getv(key))

    def exists(self, key: str) -> bool:
        return self._declared(key) in self.snapshot.data

    def gets(self, pattern: str) -> list[KVPair]:
        self._declared(pattern.split("*")[0].split("?")[0].split("[")[0])
        pairs = [KVPair(k, v) for k, v in sorted(self.snapshot.data.items())
                 if matches_glob(pattern, k)]
        self._guard(pattern, len(pairs))
        return pairs

    def getvs(self, pattern: str) -> list[str]:
        return [p.value for p in self.gets(pattern)]

    def _children(self, path: str) -> dict[str, bool]:
        """Names directly under ``path`` → whether keys lie deeper under that name."""
        base = self._declared(path)
        start = "/" if base == "/" else base + "/"
        out: dict[str, bool] = {}
        for key in self.snapshot.data:
            if key.startswith(start):
                head, sep, _ = key[len(start):].partition("/")
                out[head] = out.get(head, False) or bool(sep)
        return out

    def ls(self, path: str) -> list[str]:
        names = sorted(self._children(path))
        self._guard(path, len(names))
        return names

    def lsdir(self, path: str) -> list[str]:
        names = sorted(n for n, deeper in self._children(path).items() if deeper)
        self._guard(path, len(names))
        return names

    def units(self, glob: str, state: str | None = "active") -> list[UnitPlace]:
        if glob not in self.unit_globs:
            raise TemplateReadError(f"units({glob!r}): the glob is not in the template's "
                                    f"units ({', '.join(self.unit_globs) or 'none'})")
        found = [p for p in self.snapshot.places
                 if matches_glob(glob, p.unit) and (state is None or p.active == state)]
        self._guard(glob, len(found))
        return found


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise TemplateReadError(f"json: not JSON: {exc}") from exc


def json_array(text: str) -> list[Any]:
    value = json_value(text)
    if not isinstance(value, list):
        raise TemplateReadError("jsonArray: not a JSON array")
    return value
