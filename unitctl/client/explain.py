"""What ``explain`` tells about one unit: where it is placed, or why it cannot be.

Reads the snapshot (:mod:`unitctl.client.snapshot`), the unit's
``[X-Fleet]`` requirements (:class:`~unitctl.client.views.Bodies`), its
records of the failure policy (failures per machine, moves) and the records of
its volumes (where each one's data is). Reads only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from unitctl.client.snapshot import read_snapshot
from unitctl.client.views import Bodies
from unitctl.errors import NotFoundError
from unitctl.failover import FailureRecord, MoveRecord
from unitctl.model import DesiredState, Machine, Requirements, UnitRecord, UnitState
from unitctl.registry.failures import failure_store
from unitctl.registry.registry import Registry
from unitctl.volumes import VolumeRecord


@dataclass(frozen=True, slots=True)
class Explanation:
    """What ``explain`` tells about one unit."""

    record: UnitRecord
    is_global: bool
    state: DesiredState | None
    placement: str | None
    placement_machine: Machine | None
    reported: tuple[UnitState, ...]
    reasons: Mapping[str, str] | None
    requirements: Requirements | None
    #: machine -> the unit's failure record there (the failure policy)
    failures: Mapping[str, FailureRecord] = field(default_factory=dict)
    #: the unit's moves off failing machines, oldest first
    moves: tuple[MoveRecord, ...] = ()
    #: the records of the unit's volumes (where each one's data lives), by name
    volumes: tuple[VolumeRecord, ...] = ()


async def explain(registry: Registry, bodies: Bodies, name: str) -> Explanation:
    """Where a unit is placed, or why it cannot be."""
    snap = await read_snapshot(registry)
    rec = snap.units.get(name)
    if rec is None:
        raise NotFoundError(f"Unit {name} not found")
    req = await bodies.requirements(rec)
    is_global = req is not None and req.is_global
    placement = None if is_global else snap.placements.get(name)
    reported = tuple(sorted((s.state for s in snap.states.get(name, {}).values()),
                            key=lambda s: s.machine_id))
    return Explanation(
        record=rec, is_global=is_global, state=None if is_global else snap.current(name),
        placement=placement,
        placement_machine=snap.machines.get(placement) if placement else None,
        reported=reported, reasons=None if is_global else snap.unplaceable(name),
        requirements=req, failures=await failure_store(registry).failures_of(name),
        moves=await failure_store(registry).moves_of(name),
        volumes=tuple(sorted((v for v in (await registry.volumes.all()).values()
                              if v.unit == name), key=lambda v: v.name)))
