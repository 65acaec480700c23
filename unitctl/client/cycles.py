"""The submit-time cycle checks: a submission that would close a dependency cycle
(After=/Before=, :func:`unitctl.dependencies.cycle_problem`) or a ``Replaces=``
cycle (:func:`unitctl.xfleet.replace_cycle`) among the cluster's units is
refused, naming the cycle, before anything is written.

fleet ran both: it ignored order, and its documentation calls a circular
replacement "not allowed" but it ran every unit of one. Every new cycle has an
edge declared by a submitted unit, so the stored units are read (once, for both
checks) only when a submitted unit declares an order or a ``Replaces=``.
Templates are skipped (their instances are checked when they are submitted), and
so are units stored with the same body (a start of stored units reads nothing more).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from unitctl import dependencies, xfleet
from unitctl.client.resolve import LocalUnit
from unitctl.client.views import parse_or_none
from unitctl.errors import InvalidOptionsError, InvalidUnitError
from unitctl.model import Requirements
from unitctl.names import is_template
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile


async def refuse_cycles(registry: Registry, units: Sequence[LocalUnit]) -> None:
    """Raise :class:`InvalidUnitError` (dependency cycle) or
    :class:`InvalidOptionsError` (Replaces cycle) naming the cycle."""
    files = {lu.name: lu.unit for lu in units if lu.unit is not None
             and not is_template(lu.name) and not _stored_as_is(lu, lu.unit)}
    deps = {name: dependencies.parse(name, unit) for name, unit in files.items()}
    reqs = {name: xfleet.requirements(name, unit) for name, unit in files.items()}
    orders = any(d.orders() for d in deps.values())
    replaces = any(r.replaces for r in reqs.values())
    if not (orders or replaces):
        return
    stored = await _stored_files(registry, set(files))
    if orders:
        _refuse_order_cycle(deps, stored)
    if replaces:
        _refuse_replace_cycle(reqs, stored)


def _stored_as_is(lu: LocalUnit, unit: UnitFile) -> bool:
    """The unit is stored with this very body: it closes no cycle that is not there."""
    return lu.record is not None and lu.record.hash == unit.hash()


async def _stored_files(registry: Registry, skip: set[str]) -> dict[str, UnitFile]:
    """Every stored unit but templates and ``skip``, parsed (a body that does not
    parse is left out: it orders and replaces nothing)."""
    records = {n: r.hash for n, r in (await registry.read_units()).units.items()
               if n not in skip and not is_template(n)}
    bodies = await registry.get_bodies_by_hash(records.values())
    parsed = {name: parse_or_none(bodies.get(sha)) for name, sha in records.items()}
    return {name: unit for name, unit in parsed.items() if unit is not None}


def _refuse_order_cycle(deps: Mapping[str, dependencies.UnitDeps],
                        stored: Mapping[str, UnitFile]) -> None:
    graph = dict(deps)
    graph.update({n: dependencies.parse(n, u) for n, u in stored.items() if n not in deps})
    problem = dependencies.cycle_problem(graph)
    if problem is not None:
        raise InvalidUnitError(f"{problem}: not submitted")


def _refuse_replace_cycle(reqs: Mapping[str, Requirements],
                          stored: Mapping[str, UnitFile]) -> None:
    every = {n: xfleet.requirements(n, u) for n, u in stored.items() if n not in reqs}
    every.update(reqs)
    cycle = xfleet.replace_cycle(every, reqs)
    if cycle is not None:
        steps = " -> ".join(unit for unit, _ in cycle) + f" -> {cycle[0][0]}"
        rules = ", ".join(f"{unit} has Replaces={pattern}" for unit, pattern in cycle)
        raise InvalidOptionsError(
            f"circular Replaces: {steps} ({rules}); a unit may not replace a unit "
            f"that replaces it: remove one of these Replaces= lines")
