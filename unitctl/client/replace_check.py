"""The submit-time Replaces check: a circular ``Replaces=`` is refused before any write.

fleet's documentation calls a circular replacement "not allowed" but fleet runs
every unit of one. Here a submit (or a load/start that creates units) whose
units would close a Replaces cycle, among themselves or with units already
stored, fails with the cycle named and nothing written. The cycle itself is
found by the pure :func:`unitctl.xfleet.replace_cycle`; this module only reads
what it needs, and only when a submitted unit has ``Replaces=`` at all (a unit
without one cannot close a cycle).
"""

from __future__ import annotations

from collections.abc import Sequence

from unitctl import names as unames
from unitctl import xfleet
from unitctl.client.resolve import LocalUnit
from unitctl.client.views import parse_or_none
from unitctl.errors import InvalidOptionsError
from unitctl.model import Requirements
from unitctl.registry.registry import Registry


async def refuse_replace_cycles(registry: Registry, units: Sequence[LocalUnit]) -> None:
    """Raise InvalidOptionsError naming the cycle if ``units`` close a Replaces cycle."""
    submitted: dict[str, Requirements] = {
        lu.name: xfleet.requirements(lu.name, lu.unit)
        for lu in units if lu.unit is not None and not unames.is_template(lu.name)
    }
    if not any(req.replaces for req in submitted.values()):
        return
    every = await _stored(registry, set(submitted))
    every.update(submitted)
    cycle = xfleet.replace_cycle(every, submitted)
    if cycle is not None:
        steps = " -> ".join(unit for unit, _ in cycle) + f" -> {cycle[0][0]}"
        rules = ", ".join(f"{unit} has Replaces={pattern}" for unit, pattern in cycle)
        raise InvalidOptionsError(
            f"circular Replaces: {steps} ({rules}); a unit may not replace a unit "
            f"that replaces it: remove one of these Replaces= lines")


async def _stored(registry: Registry, skip: set[str]) -> dict[str, Requirements]:
    """The requirements of every stored unit but templates and ``skip``."""
    records = [rec for rec in await registry.list_units()
               if rec.name not in skip and not unames.is_template(rec.name)]
    bodies = await registry.get_bodies_by_hash({rec.hash for rec in records})
    found: dict[str, Requirements] = {}
    for rec in records:
        unit = parse_or_none(bodies.get(rec.hash))
        if unit is not None:
            found[rec.name] = xfleet.requirements(rec.name, unit)
    return found
