"""What ``unitctl start`` and ``unitctl load`` do once their arguments are read.

Shared by the click command (:mod:`unitctl.cli.units`) and the launcher's lean
path (:mod:`unitctl.cli.leanstart`), so both print and write the same: every
argument resolved and validated before anything is written, units submitted
if needed, the desired state set, then (unless ``no_block``) a wait until
each non-global unit reports the state, and for ``start`` the host ports the
units hold (:mod:`unitctl.client.endpoints`).
"""

from __future__ import annotations

from collections.abc import Sequence

from unitctl.client.endpoints import endpoint_lines
from unitctl.client.facade import Client
from unitctl.model import DesiredState, UnitRecord


async def activate(c: Client, units: Sequence[str], target: DesiredState, verb: str,
                   no_block: bool, block_attempts: int, replace: bool) -> None:
    """Submit ``units`` if needed and set their desired state to ``target``; print
    through ``c.out`` as fleetctl does; wait unless ``no_block`` (0 attempts: for ever)."""
    resolved = await c.resolve(units, verb)
    written = await c.submit(resolved, replace, verb)
    if not no_block:
        for rec in written:
            if rec.desired is DesiredState.INACTIVE:
                c.out(f"Unit {rec.name} inactive")
    records = await c.submitted(resolved, written)
    texts = {lu.name: lu.unit for lu in resolved if lu.unit is not None}
    local, glob = await c.split_global(records, texts)
    await set_and_wait(c, records, (local, glob), target, verb, no_block, block_attempts)
    if not no_block and target is DesiredState.LAUNCHED:
        for line in await endpoint_lines(c.registry, local):
            c.out(line)


async def set_and_wait(c: Client, records: Sequence[UnitRecord],
                       split: tuple[Sequence[str], Sequence[str]], target: DesiredState,
                       verb: str, no_block: bool, block_attempts: int) -> None:
    """Set ``records`` to ``target`` and print fleetctl's lines: "Triggered global
    unit" for each global unit, then for the non-global ones either "Triggered
    unit" (``no_block``) or nothing until each reports ``target`` (a wait of
    ``block_attempts``, 0: for ever). ``split`` is (non-global, global) names."""
    local, glob = split
    since = await c.set_states(records, target)
    for name in glob:
        c.out(f"Triggered global unit {name} {verb}")
    if no_block:
        for name in local:
            c.out(f"Triggered unit {name} {verb}")
        return
    await c.wait_for(local, c.reached(target, since), block_attempts,
                     what=f"report state {target.value}")
