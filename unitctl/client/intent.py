"""Intent writes: what a user asks of the cluster (submit, desired state, destroy).

The client owns the ``units/`` keys: a unit's body and its *desired* state
(``DSTATE``). These functions write them from already-resolved units and
already-read records, so a command reads each unit's key once: new units go
through the batched path (:meth:`Registry.create_units`, a few dozen per
transaction), and a replacement obeys fleet's ``checkReplaceUnitState``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from unitctl.client.cycles import refuse_cycles
from unitctl.client.resolve import LocalUnit, refuse_template
from unitctl.errors import NotFoundError
from unitctl.model import DesiredState, UnitRecord
from unitctl.registry.registry import Registry

#: fleet's checkReplaceUnitState: the desired states a command may replace a unit in.
REPLACE_ALLOWED: Mapping[str, frozenset[DesiredState]] = {
    "submit": frozenset({DesiredState.INACTIVE}),
    "load": frozenset({DesiredState.INACTIVE, DesiredState.LOADED}),
    "start": frozenset({DesiredState.INACTIVE, DesiredState.LOADED, DesiredState.LAUNCHED}),
}

Say = Callable[[str], None]


class _Plan:
    """What :func:`submit` decided: units to create (batched) and to replace."""

    __slots__ = ("create", "replace")

    def __init__(self, create: list[tuple[int, LocalUnit]],
                 replace: list[tuple[int, LocalUnit, UnitRecord]]) -> None:
        self.create = create
        self.replace = replace


def _plan(units: Sequence[LocalUnit], replace: bool, allowed: frozenset[DesiredState],
          out: Say, err: Say) -> _Plan:
    """Decide every unit's write before any is made (printing fleet's notices)."""
    plan = _Plan([], [])
    known: dict[str, UnitRecord] = {}
    for i, lu in enumerate(units):
        rec = known.get(lu.name, lu.record)
        if rec is None:
            if lu.unit is None:
                raise NotFoundError(f"Unit {lu.name} not found")
            known[lu.name] = UnitRecord(lu.name, lu.unit.hash(), DesiredState.INACTIVE)
            plan.create.append((i, lu))
            continue
        if lu.unit is None or lu.kind == "registry-template":
            continue
        if lu.unit.hash() == rec.hash:
            if replace:
                out(f"Found same Unit({lu.name}) in Registry, nothing to do")
            continue
        if not replace:
            what = "local template unit file" if lu.kind == "template-file" else \
                "local unit file"
            err(f"WARNING: Unit {lu.name} in registry differs from {what} "
                f"{lu.source}. Add --replace to override.")
            continue
        if rec.desired not in allowed:
            err(f"Warning: can not replace Unit({lu.name}) in state "
                f"'{rec.desired.value}', use the appropriate command")
            continue
        known[lu.name] = UnitRecord(lu.name, lu.unit.hash(), rec.desired)
        plan.replace.append((i, lu, rec))
    return plan


async def submit(registry: Registry, units: Sequence[LocalUnit], replace: bool,
                 command: str, out: Say, err: Say) -> list[UnitRecord]:
    """Store new units; warn about (or, with ``replace``, overwrite) differing ones.

    Returns the records of the units created or replaced, in argument order.
    Units are created with desired state ``inactive``; a replaced unit keeps
    its desired state. A dependency or Replaces cycle is refused before anything is written.
    """
    await refuse_cycles(registry, units)
    plan = _plan(units, replace, REPLACE_ALLOWED.get(command, REPLACE_ALLOWED["submit"]),
                 out, err)
    written: list[tuple[int, UnitRecord]] = []
    news = [(i, UnitRecord(lu.name, lu.unit.hash(), DesiredState.INACTIVE), lu.unit.serialize())
            for i, lu in plan.create if lu.unit is not None]
    created = await registry.create_units([(rec, body) for _, rec, body in news])
    written += [(i, rec) for (i, rec, _), ok in zip(news, created, strict=True) if ok]
    for i, lu, old in plan.replace:
        assert lu.unit is not None
        new = UnitRecord(lu.name, lu.unit.hash(), old.desired)
        if await registry.create_unit(new, lu.unit.serialize(), replace=True):
            written.append((i, new))
    return [rec for _, rec in sorted(written, key=lambda pair: pair[0])]


def after_submit(units: Sequence[LocalUnit],
                 written: Sequence[UnitRecord]) -> dict[str, UnitRecord | None]:
    """Each unit's record once :func:`submit` ran (None: unknown, read it again)."""
    records: dict[str, UnitRecord | None] = {lu.name: lu.record for lu in units}
    records.update((rec.name, rec) for rec in written)
    return records


async def set_desired(registry: Registry, records: Sequence[UnitRecord],
                      target: DesiredState) -> int:
    """Set the desired state of existing units; return the revision before.

    Every unit is checked (not a template for a non-inactive state) before
    any is changed.
    """
    if target is not DesiredState.INACTIVE:
        verb = "start" if target is DesiredState.LAUNCHED else "load"
        for rec in records:
            refuse_template(rec.name, verb)
    since = await registry.revision()
    await registry.set_desired_many([rec.name for rec in records], target,
                                    known={rec.name: rec for rec in records})
    return since


async def destroy(registry: Registry, records: Sequence[UnitRecord]) -> list[str]:
    """Delete units (many per transaction); return the names that were still there."""
    if len(records) == 1:
        return [records[0].name] if await registry.destroy_unit(records[0].name) else []
    return await registry.destroy_units([rec.name for rec in records])
