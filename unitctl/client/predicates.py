"""What a wait waits for: the predicates over a :class:`~unitctl.client.views.Snapshot`.

A :data:`~unitctl.client.views.Predicate` returns the message to print once the
unit reached the state ("" to print nothing), or None to keep waiting; it may
raise a UnitctlError (a fresh report of a failure ends the wait). Pure: no
I/O and no asyncio, so the facade imports it on every path.
"""

from __future__ import annotations

from unitctl.client.views import BAD_LOAD_STATES, RUNNING_STATES, Predicate, Snapshot
from unitctl.errors import SystemdError
from unitctl.model import DesiredState, UnitState


def reached(target: DesiredState, since: int = 0, failed_before: bool = False) -> Predicate:
    """A predicate: the unit's derived state is ``target`` (with its current body);
    a launched unit that has a health check must also be healthy.

    Reports that failed after revision ``since`` end the wait with an error.
    ``failed_before``: the unit was ``failed`` when the wait began (a restart
    whose stop ended failed, say a container killed by ``docker stop``); an
    agent may publish that state again after ``since``, so ``failed`` ends the
    wait only once the unit was seen in another state after ``since``.
    """
    moved: set[str] = set()  # units seen out of "failed" after since

    def check(snap: Snapshot, name: str) -> str | None:
        rec = snap.units.get(name)
        machine, stored = snap.placed_state(name)
        if target is DesiredState.INACTIVE:
            return f"Unit {name} inactive" if stored is None else None
        if rec is None or machine is None or stored is None:
            return None
        st = stored.state
        if st.hash and st.hash != rec.hash:
            return None  # the agent still runs the previous body
        fresh = stored.mod_rev > since
        legend = snap.legend(machine)
        if fresh:
            _raise_if_refused(name, legend, st)
        if target is DesiredState.LOADED:
            if st.active in RUNNING_STATES or st.active == "deactivating":
                return None  # still stopping: it may yet end "failed"
            return f"Unit {name} loaded on {legend}"
        if st.active == "active":
            return _launched(name, legend, st.health)
        if fresh and st.active != "failed":
            moved.add(name)
        if fresh and st.active == "failed" and (not failed_before or name in moved):
            raise SystemdError(
                f"Unit {name} failed on {legend}: active={st.active} sub={st.sub}")
        return None

    return check


def _raise_if_refused(name: str, legend: str, st: UnitState) -> None:
    """Raise for a fresh report of a failed task (the agent retries it with
    backoff) or of a unit systemd could not load."""
    if st.error:
        raise SystemdError(f"Unit {name} failed on {legend}: {st.error}")
    if st.load in BAD_LOAD_STATES:
        raise SystemdError(f"Unit {name} failed to load on {legend}: load={st.load}")


def _launched(name: str, legend: str, health: str) -> str | None:
    """Launched, once its health check (if it has one) passed: the agent reports
    ``starting`` until then, and ``unhealthy`` while it fails."""
    if health in ("starting", "unhealthy"):
        return None
    return f"Unit {name} launched on {legend}" + (" (healthy)" if health else "")


def gone(snap: Snapshot, name: str) -> str | None:
    """A predicate: no machine reports the unit any more (prints nothing)."""
    return None if snap.states.get(name) else ""
