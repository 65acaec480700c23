"""The submit-time dependency check: a submission that would close an ordering
cycle (After=/Before=) among the cluster's units is refused, naming the cycle,
before anything is written.

Only a submission whose units declare an order reads the stored units (every
new cycle has an edge declared by a submitted unit); the check itself is
:func:`unitctl.dependencies.cycle_problem` (pure).
"""

from __future__ import annotations

from collections.abc import Sequence

from unitctl import dependencies
from unitctl.client.resolve import LocalUnit
from unitctl.errors import InvalidUnitError
from unitctl.names import is_template
from unitctl.registry.registry import Registry
from unitctl.unitfile import UnitFile


async def refuse_cycles(registry: Registry, units: Sequence[LocalUnit]) -> None:
    """Raise :class:`InvalidUnitError` when ``units`` would close a dependency cycle."""
    submitted = {lu.name: dependencies.parse(lu.name, lu.unit) for lu in units
                 if lu.unit is not None and not is_template(lu.name)}
    if not any(d.orders() for d in submitted.values()):
        return
    stored = (await registry.read_units()).units
    others = {n: r.hash for n, r in stored.items() if n not in submitted and not is_template(n)}
    bodies = await registry.get_bodies_by_hash(others.values())
    graph = dict(submitted)
    for name, sha in others.items():
        if sha in bodies:
            try:
                graph[name] = dependencies.parse(name, UnitFile.parse(bodies[sha]))
            except InvalidUnitError:
                continue  # a stored body that does not parse orders nothing
    problem = dependencies.cycle_problem(graph)
    if problem is not None:
        raise InvalidUnitError(f"{problem}: not submitted")
