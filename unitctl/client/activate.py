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
from unitctl.model import DesiredState


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
    since = await c.set_states(records, target)
    for name in glob:
        c.out(f"Triggered global unit {name} {verb}")
    if no_block:
        for name in local:
            c.out(f"Triggered unit {name} {verb}")
        return
    await c.wait_for(local, c.reached(target, since), block_attempts,
                     what=f"report state {target.value}")
    if target is DesiredState.LAUNCHED:
        for line in await endpoint_lines(c.registry, local):
            c.out(line)
