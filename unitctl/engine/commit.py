"""The plan -> writes diff: a view and its planned schedule as guarded registry writes (pure).

:func:`plan_groups` lists the (compares, ops) groups that bring the registry
from an :class:`~unitctl.engine.view.EngineView` to a
:class:`~unitctl.engine.view.PlannedSchedule`; :func:`pack` packs them into
transactions under etcd's size limit, ready for
:meth:`~unitctl.registry.registry.Registry.commit`. The guards:

* all ops of one placed unit form one group, guarded by that unit's revisions
  as read, so a unit is never in two schedules at once and a unit that changed
  under the round is left for the next one;
* a group that takes a unit off a machine the round saw gone is also guarded by
  that machine's key being still absent: a machine that came back (registered
  again, and may have restarted the unit) in the meantime keeps it;
* the schedule ops of a unit without a placement (a global unit, a leftover
  entry) are guarded by that unit's revision as read (0: still absent), so a
  stale round never rewrites the entry of a unit just stopped or destroyed;
* a unit with resource needs placed on a machine that other units leave in the
  same round (:attr:`~unitctl.engine.view.PlannedSchedule.guarded`) is also
  guarded by the revisions of those units: if one of them changed and stays,
  the room it was to free is not given away twice (the unit waits a round).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from unitctl.engine.view import EngineView, PlannedSchedule
from unitctl.registry import codec
from unitctl.registry.keys import Keys
from unitctl.registry.kv import (
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    Compare,
    Delete,
    Group,
    Op,
    Put,
    mod_is,
    request_bytes,
)

__all__ = ["MAX_TXN_BYTES", "MAX_TXN_OPS", "Group", "pack", "plan_groups"]


def _unit_ops(keys: Keys, view: EngineView, planned: PlannedSchedule, name: str,
              scheduled_on: Mapping[str, list[str]],
              leaving: Mapping[str, list[str]]) -> Group:
    """The compares and ops that bring one non-global unit's placement to the planned one.

    ``scheduled_on`` maps a unit to the machines whose schedule holds it in
    ``view`` (an index: scanning every machine per unit is O(units x machines));
    ``leaving`` maps a machine to the units leaving it (:func:`_leaving`).
    """
    ops: list[Op] = []
    old_m, new_m = view.placements.get(name), planned.placements.get(name)
    if old_m != new_m:
        ops.append(Put(keys.placement(name), new_m.encode()) if new_m
                   else Delete(keys.placement(name)))
    left = {old_m} - {None, new_m}  # the machines the unit leaves
    for m in scheduled_on.get(name, ()):
        if m != new_m or name not in planned.schedules.get(m, {}):
            ops.append(Delete(keys.scheduled(m, name)))
            left.add(m)
    if new_m:
        want = planned.schedules.get(new_m, {}).get(name)
        have = view.schedules.get(new_m, {}).get(name)
        if want is not None and want != have:
            ops.append(Put(keys.scheduled(new_m, name), codec.encode_entry(want)))
    if not ops:
        return [], []
    compares = [mod_is(keys.placement(name), view.placement_revs.get(name, 0)),
                mod_is(keys.unit(name), view.unit_revs.get(name, 0))]
    if new_m and name in planned.guarded:
        compares += _leavers_unchanged(keys, view, leaving.get(new_m, ()))
    return compares + _still_gone(keys, view, {m for m in left if m}), ops


def _leavers_unchanged(keys: Keys, view: EngineView, leavers: Iterable[str]) -> list[Compare]:
    """Compares: each unit leaving the machine is as the round read it."""
    found: list[Compare] = []
    for other in sorted(leavers):
        if other in view.placements:
            found.append(mod_is(keys.placement(other), view.placement_revs.get(other, 0)))
        found.append(mod_is(keys.unit(other), view.unit_revs.get(other, 0)))
    return found


def _leaving(view: EngineView, planned: PlannedSchedule) -> dict[str, list[str]]:
    """machine -> the units whose schedule entry there goes away in this plan."""
    found: dict[str, list[str]] = {}
    for machine, entries in view.schedules.items():
        wanted = planned.schedules.get(machine, {})
        for name in entries:
            if name not in wanted:
                found.setdefault(machine, []).append(name)
    return found


def _still_gone(keys: Keys, view: EngineView, machines: Iterable[str]) -> list[Compare]:
    """Compares: each of ``machines`` that the round saw gone is still gone."""
    return [mod_is(keys.machine(m), 0) for m in sorted(machines) if m not in view.machines]


#: Schedule ops per group of a unit without a placement: each op may bring
#: one compare (its machine still gone), plus the unit's own.
_FREE_CHUNK = (MAX_TXN_OPS - 1) // 2


def _free_groups(keys: Keys, view: EngineView, planned: PlannedSchedule,
                 placed: set[str]) -> list[Group]:
    """Schedule groups of units without a placement key (global units, leftovers).

    One unit's ops go in groups of at most :data:`_FREE_CHUNK` machines, each
    guarded by the unit's revision as read: a global unit on 1,000 machines
    fits no transaction, and its entries need no all-or-nothing.
    """
    per_unit: dict[str, list[tuple[str, Op]]] = {}
    for m in sorted(set(view.schedules) | set(planned.schedules)):
        have, want = view.schedules.get(m, {}), planned.schedules.get(m, {})
        for name in sorted(set(have) | set(want)):
            if name in placed:
                continue
            if name not in want:
                per_unit.setdefault(name, []).append((m, Delete(keys.scheduled(m, name))))
            elif have.get(name) != want[name]:
                op = Put(keys.scheduled(m, name), codec.encode_entry(want[name]))
                per_unit.setdefault(name, []).append((m, op))
    groups: list[Group] = []
    for name in sorted(per_unit):
        guard = mod_is(keys.unit(name), view.unit_revs.get(name, 0))
        ops = per_unit[name]
        for i in range(0, len(ops), _FREE_CHUNK):
            chunk = ops[i:i + _FREE_CHUNK]
            gone = _still_gone(keys, view, (m for m, op in chunk if isinstance(op, Delete)))
            groups.append(([guard, *gone], [op for _m, op in chunk]))
    return groups


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

    All ops of one placed unit form one group, guarded by that unit's
    revisions and the source machines it leaves (see the module docstring);
    a unit without a placement has its schedule groups guarded by its
    revision; explanations come in unguarded groups of one op.

    Placed units come machine by machine (then by name): packed in that order,
    one machine's new units land in one transaction, so its agent sees them in
    one watch batch and reconciles once, not once per unit.
    """
    placed = set(view.placements) | set(planned.placements)
    scheduled_on: dict[str, list[str]] = {}
    for m, entries in view.schedules.items():
        for name in entries:
            scheduled_on.setdefault(name, []).append(m)
    leaving = _leaving(view, planned) if planned.guarded else {}
    groups: list[Group] = []
    for name in sorted(placed, key=lambda n: (_machine_of(view, planned, n), n)):
        c, o = _unit_ops(keys, view, planned, name, scheduled_on, leaving)
        if o:
            groups.append((c, o))
    groups.extend(_free_groups(keys, view, planned, placed))
    groups.extend(([], [op]) for op in _explain_ops(keys, view, planned))
    return groups


def _machine_of(view: EngineView, planned: PlannedSchedule, name: str) -> str:
    """The machine a placed unit goes to (or, when it goes nowhere, leaves)."""
    return planned.placements.get(name) or view.placements.get(name) or ""


def pack(groups: list[Group], limit: int = MAX_TXN_OPS,
         byte_limit: int = MAX_TXN_BYTES) -> list[list[Group]]:
    """Pack groups into transactions of at most ``limit`` compares and at most
    ``limit`` ops (etcd's ``--max-txn-ops`` bounds each list of a transaction
    on its own, not their sum) and ``byte_limit`` key and value bytes (etcd's
    request limit, with a margin). Groups stay whole and in order."""
    batches: list[list[Group]] = []
    cur: list[Group] = []
    compares = ops = size = 0
    for g in groups:
        c, o, b = len(g[0]), len(g[1]), request_bytes(g[0], g[1])
        if cur and (compares + c > limit or ops + o > limit or size + b > byte_limit):
            batches.append(cur)
            cur, compares, ops, size = [], 0, 0, 0
        cur.append(g)
        compares, ops, size = compares + c, ops + o, size + b
    if cur:
        batches.append(cur)
    return batches
