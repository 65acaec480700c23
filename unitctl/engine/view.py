"""What one engine round reads and what it wants written (pure types).

An :class:`EngineView` is the engine's input, read from the registry (once, or
kept live by the :class:`~unitctl.engine.mirror.Mirror`) with the revision of
every unit and placement key, so the commit can be guarded by them. A
:class:`PlannedSchedule` is the round's output; :mod:`unitctl.engine.commit`
turns the difference between the two into registry writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from unitctl.failover import FailureRecord, MoveRecord
from unitctl.model import Machine, ScheduleEntry, UnitRecord
from unitctl.volumes import VolumeRecord


@dataclass(frozen=True, slots=True)
class EngineView:
    """Everything the engine reads for one round, with the revisions it read."""

    revision: int
    units: Mapping[str, UnitRecord]
    unit_revs: Mapping[str, int]
    placements: Mapping[str, str]
    placement_revs: Mapping[str, int]
    schedules: Mapping[str, Mapping[str, ScheduleEntry]]
    machines: Mapping[str, Machine]
    explanations: Mapping[str, Mapping[str, str]]
    #: unit -> machine -> the failure record its agent wrote (:mod:`unitctl.failover`)
    failures: Mapping[str, Mapping[str, FailureRecord]] = field(default_factory=dict)
    #: unit -> its moves off failing machines, oldest first
    moves: Mapping[str, tuple[MoveRecord, ...]] = field(default_factory=dict)
    #: volume name -> where it lives (:mod:`unitctl.volumes`): its unit sticks there
    volumes: Mapping[str, VolumeRecord] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlannedSchedule:
    """What the engine wants stored after a round.

    Attributes:
        guarded: the units whose new placement takes room (CPU, memory, a fixed
            host port) that units leaving the same machine free in this round:
            their writes are also guarded by those units' revisions.
    """

    placements: Mapping[str, str]
    schedules: Mapping[str, Mapping[str, ScheduleEntry]]
    explanations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    guarded: frozenset[str] = frozenset()
