"""The graceful stop's unit part: stop every local unit in parallel within a budget.

Contract of :func:`stop_all`:

* every unit in the directory gets its stop job queued first, all at once
  (``StopUnit``: the job then finishes in systemd even if the agent dies, as
  the units are not in the agent's cgroup);
* then all units are unloaded in parallel (stop and wait, disable, delete the
  file), retried until each is *down* or the budget has run out;
* a unit is down when systemd reports it ``inactive`` or ``failed`` (for a
  service: its stop finished and its control group is empty) or no longer
  knows it; a unit whose state cannot be read is not down;
* the result is the sorted names still not down when the budget ran out
  (empty: every unit is down, so the caller may revoke the lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from unitctl.errors import UnitctlError

from .ports import UnitManager

log = logging.getLogger("unitctl.agent")

#: systemd ActiveStates of a unit that runs nothing any more.
DOWN_STATES = frozenset({"inactive", "failed"})
#: Pause between two rounds of retries while units are still stopping.
RETRY_PAUSE = 0.2


async def stop_all(units: UnitManager, budget: float,
                   clock: Callable[[], float]) -> list[str]:
    """Stop every unit of ``units`` within ``budget`` seconds; return those still up."""
    deadline = clock() + budget
    pending = sorted(units.present())
    await asyncio.gather(*(_queue_stop(units, n) for n in pending))
    while pending:
        remaining = deadline - clock()
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(_unload(units, n) for n in pending)), remaining)
        pending = [n for n in pending if not await is_down(units, n)]
        if not pending or clock() >= deadline:
            break
        await asyncio.sleep(min(RETRY_PAUSE, max(0.0, deadline - clock())))
    return pending


async def is_down(units: UnitManager, name: str) -> bool:
    """True when systemd reports ``name`` inactive or failed (or does not know it)."""
    try:
        state = await units.state(name)
    except UnitctlError as exc:
        log.warning("agent: cannot read the state of %s while stopping: %s", name, exc)
        return False
    return state.active in DOWN_STATES


async def _queue_stop(units: UnitManager, name: str) -> None:
    try:
        await units.stop(name)
    except UnitctlError as exc:
        log.warning("agent: stop %s: %s", name, exc)


async def _unload(units: UnitManager, name: str) -> None:
    try:
        await units.unload(name)
    except UnitctlError as exc:
        log.warning("agent: unload %s: %s", name, exc)
