"""The read models of the client: what ``list-unit-files``, ``cat`` and ``explain`` show.

The :class:`~unitctl.client.snapshot.Snapshot` (units, placements, reports,
explanations, machines, and fleet's derived *current* state) lives in
:mod:`unitctl.client.snapshot` and is re-exported here. :class:`Bodies` reads
the stored unit texts, and caches per body hash whether a unit is global.
Reads only: nothing here writes. ``explain`` is :mod:`unitctl.client.explain`
(it reads the failure policy's records too).
"""

from __future__ import annotations

from collections.abc import Callable

from unitctl import xfleet
from unitctl.client.snapshot import (
    BAD_LOAD_STATES,
    RUNNING_STATES,
    Snapshot,
    StoredState,
    UnitFileInfo,
    group_states,
    read_snapshot,
    reported_states,
)
from unitctl.errors import InvalidUnitError, NotFoundError
from unitctl.legend import short_reason
from unitctl.model import Requirements, UnitRecord
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile

__all__ = ["BAD_LOAD_STATES", "RUNNING_STATES", "Bodies", "Predicate", "Snapshot",
           "StoredState", "UnitFileInfo", "cat", "group_states", "parse_or_none",
           "read_snapshot", "reported_states", "unit_file_rows"]


def parse_or_none(body: str | None) -> UnitFile | None:
    """The parsed unit text, or None when it is missing or malformed."""
    if body is None:
        return None
    try:
        return UnitFile.parse(body)
    except InvalidUnitError:
        return None


class Bodies:
    """The stored unit texts: requirements and the per-hash "is it global" cache."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._global: dict[str, bool] = {}

    async def requirements(self, rec: UnitRecord) -> Requirements | None:
        """The [X-Fleet] requirements of a stored unit (None: body missing or malformed)."""
        unit = parse_or_none(await self.registry.get_body(rec.hash))
        return None if unit is None else xfleet.requirements(rec.name, unit)

    async def is_global(self, rec: UnitRecord, unit: UnitFile | None = None) -> bool:
        """Tell whether a stored unit has ``Global=true`` (cached by body hash).

        ``unit`` is the unit's text when the caller already holds it (its hash
        must be the record's); the body is then not read.
        """
        if rec.hash not in self._global:
            if unit is not None and unit.hash() == rec.hash:
                self.remember(rec.hash, xfleet.requirements(rec.name, unit).is_global)
            else:
                req = await self.requirements(rec)
                self.remember(rec.hash, req is not None and req.is_global)
        return self._global[rec.hash]

    def remember(self, sha: str, is_global: bool) -> None:
        """Record what a body says about ``Global=`` (read elsewhere)."""
        self._global[sha] = is_global


async def cat(registry: Registry, name: str) -> str:
    """The stored (serialised) text of a unit."""
    rec = await registry.get_unit(name)
    if rec is None:
        raise NotFoundError(f"Unit {name} not found")
    body = await registry.get_body(rec.hash)
    if body is None:
        raise NotFoundError(f"the body of unit {name} ({rec.hash[:7]}) is missing")
    return body


# ------------------------------------------------------------------ list-unit-files


async def unit_file_rows(registry: Registry, bodies: Bodies,
                         snap: Snapshot | None = None) -> list[UnitFileInfo]:
    """Every stored unit, sorted by name (``snap``: already read); bodies are
    read by hash in bounded batches, never all in one reply."""
    snap = snap or await read_snapshot(registry)
    texts = await registry.get_bodies_by_hash(rec.hash for rec in snap.units.values())
    rows = []
    for name in sorted(snap.units):
        rec = snap.units[name]
        unit = parse_or_none(texts.get(rec.hash))
        is_global = unit is not None and xfleet.requirements(name, unit).is_global
        bodies.remember(rec.hash, is_global)
        desc = (unit.value("Unit", "Description") if unit else None) or ""
        target = None if is_global else snap.placements.get(name)
        reasons = None if is_global else snap.unplaceable(name)
        rows.append(UnitFileInfo(
            name=name, hash=rec.hash, desired=rec.desired,
            state=None if is_global else snap.current(name), is_global=is_global,
            target=target, target_machine=snap.machines.get(target) if target else None,
            description=desc, reason="" if reasons is None else short_reason(reasons)))
    return rows


#: Tells why a unit has not reached what a command waits for (None: it has);
#: :mod:`unitctl.client.wait` builds them and waits on them.
Predicate = Callable[[Snapshot, str], str | None]
