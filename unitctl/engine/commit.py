"""The plan -> writes diff: a view and its planned schedule as guarded registry writes (pure).

:func:`plan_groups` lists the (compares, ops) groups that bring the registry
from an :class:`~unitctl.engine.view.EngineView` to a
:class:`~unitctl.engine.view.PlannedSchedule`; :func:`pack` packs them into
transactions under etcd's size limit, ready for
:meth:`~unitctl.registry.registry.Registry.commit`. All ops of one non-global
unit form one group guarded by that unit's revisions as read, so a unit is
never in two schedules at once and a unit that changed under the round is
left for the next one.
"""

from __future__ import annotations

from collections.abc import Mapping

from unitctl.engine.view import EngineView, PlannedSchedule
from unitctl.registry import codec
from unitctl.registry.keys import Keys
from unitctl.registry.kv import (
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    Delete,
    Group,
    Op,
    Put,
    mod_is,
    request_bytes,
)

__all__ = ["MAX_TXN_BYTES", "MAX_TXN_OPS", "Group", "pack", "plan_groups"]


def _unit_ops(keys: Keys, view: EngineView, planned: PlannedSchedule, name: str,
              scheduled_on: Mapping[str, list[str]]) -> Group:
    """The compares and ops that bring one non-global unit's placement to the planned one.

    ``scheduled_on`` maps a unit to the machines whose schedule holds it in
    ``view`` (an index: scanning every machine per unit is O(units x machines)).
    """
    ops: list[Op] = []
    old_m, new_m = view.placements.get(name), planned.placements.get(name)
    if old_m != new_m:
        ops.append(Put(keys.placement(name), new_m.encode()) if new_m
                   else Delete(keys.placement(name)))
    for m in scheduled_on.get(name, ()):
        if m != new_m or name not in planned.schedules.get(m, {}):
            ops.append(Delete(keys.scheduled(m, name)))
    if new_m:
        want = planned.schedules.get(new_m, {}).get(name)
        have = view.schedules.get(new_m, {}).get(name)
        if want is not None and want != have:
            ops.append(Put(keys.scheduled(new_m, name), codec.encode_entry(want)))
    if not ops:
        return [], []
    compares = [mod_is(keys.placement(name), view.placement_revs.get(name, 0))]
    if name in view.unit_revs:
        compares.append(mod_is(keys.unit(name), view.unit_revs[name]))
    return compares, ops


def _free_ops(keys: Keys, view: EngineView, planned: PlannedSchedule,
              placed: set[str]) -> list[Op]:
    """Schedule ops for units without a placement key (global units, leftovers)."""
    ops: list[Op] = []
    for m in sorted(set(view.schedules) | set(planned.schedules)):
        have, want = view.schedules.get(m, {}), planned.schedules.get(m, {})
        for name in sorted(set(have) | set(want)):
            if name in placed:
                continue
            if name not in want:
                ops.append(Delete(keys.scheduled(m, name)))
            elif have.get(name) != want[name]:
                ops.append(Put(keys.scheduled(m, name), codec.encode_entry(want[name])))
    return ops


def _explain_ops(keys: Keys, view: EngineView, planned: PlannedSchedule) -> list[Op]:
    ops: list[Op] = []
    for name in sorted(set(view.explanations) | set(planned.explanations)):
        want = planned.explanations.get(name)
        if want is None:
            ops.append(Delete(keys.explanation(name)))
        elif dict(view.explanations.get(name, {})) != dict(want):
            ops.append(Put(keys.explanation(name), codec.encode_explanation(want)))
    return ops


def plan_groups(keys: Keys, view: EngineView, planned: PlannedSchedule) -> list[Group]:
    """The view → planned difference as groups of (compares, ops).

    All ops of one non-global unit form one group, guarded by that unit's
    revisions, so a unit is never in two schedules at once. Other ops
    (global units, explanations) come in unguarded groups of one op.
    """
    placed = set(view.placements) | set(planned.placements)
    scheduled_on: dict[str, list[str]] = {}
    for m, entries in view.schedules.items():
        for name in entries:
            scheduled_on.setdefault(name, []).append(m)
    groups: list[Group] = []
    for name in sorted(placed):
        c, o = _unit_ops(keys, view, planned, name, scheduled_on)
        if o:
            groups.append((c, o))
    free = _free_ops(keys, view, planned, placed) + _explain_ops(keys, view, planned)
    groups.extend(([], [op]) for op in free)
    return groups


def pack(groups: list[Group], limit: int = MAX_TXN_OPS,
         byte_limit: int = MAX_TXN_BYTES) -> list[list[Group]]:
    """Pack groups into transactions of at most ``limit`` compares plus ops and
    ``byte_limit`` key and value bytes (etcd's request limit, with a margin)."""
    batches: list[list[Group]] = []
    cur: list[Group] = []
    count = size = 0
    for g in groups:
        n, b = len(g[0]) + len(g[1]), request_bytes(g[0], g[1])
        if cur and (count + n > limit or size + b > byte_limit):
            batches.append(cur)
            cur, count, size = [], 0, 0
        cur.append(g)
        count, size = count + n, size + b
    if cur:
        batches.append(cur)
    return batches
