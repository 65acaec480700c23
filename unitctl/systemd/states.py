"""The state of our units as systemd's signals tell it: a pure state tracker.

:class:`StateTracker` is fed the signals of systemd's D-Bus API as message
bodies (``signal(path, interface, member, body)``, values as dbus-fast
delivers them: ``Variant`` objects with a ``.value``) and the rows of
``ListUnitsByNames`` replies. It keeps the per-unit cache and answers each
feed with an :class:`Update`: which units changed state (to report), which
units' state to fetch, which job finished. No I/O, no dbus-fast, no asyncio:
the manager does the calls.

The rules (systemd 252):

* only *owned* units are tracked and reported (those with a file in the unit
  directory, see :meth:`StateTracker.own`); a state is reported only when its
  (load, active, sub) triple differs from the last one reported;
* ``PropertiesChanged`` on ``org.freedesktop.systemd1.Unit`` carries
  ``ActiveState``/``SubState`` but not ``LoadState``, so LoadState is cached
  per unit and fetched (one ``ListUnitsByNames``) when unknown: at the first
  signal of a unit, after a daemon-reload (``Reloading(false)``) and after
  systemd loaded a rewritten file anew (``UnitNew``). A fetch is only ever
  triggered by a signal and cannot trigger a ``PropertiesChanged`` itself, so
  there is no feedback loop;
* one fetch per unit at a time: a unit asked for while its fetch is in flight
  is fetched once more afterwards; a signal that arrived during a fetch wins
  over the fetched ActiveState/SubState (systemd emits the final state after
  any reply);
* ``JobRemoved(id, job, unit, result)`` reports ``(job, result)``;
* a stopped unit's state signalled while a job is queued for it (the
  ``inactive`` of a start just queued) is not reported: the job changes it,
  and its end brings one more signal with the state it left;
* a read of a unit's state for the owner (:meth:`StateTracker.read_started`,
  :meth:`StateTracker.read_done`) is never older than what the tracker
  learned while it was in flight: the owner may already have reported that;
  its LoadState is kept when the tracker has none (no daemon-reload or file
  removal came in meanwhile), so the first signal of a unit the agent just
  loaded (its start's ``active``) is reported without a fetch first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from unitctl.agent.ports import SystemdState
from unitctl.systemd.api import (
    MANAGER_IFACE,
    MANAGER_PATH,
    PROPERTIES_IFACE,
    UNIT_IFACE,
    unit_name_of_path,
)

__all__ = ["FetchedRow", "StateTracker", "Update"]

#: One row of a ``ListUnitsByNames`` reply: (name, load, active, sub).
FetchedRow = tuple[str, str, str, str]


class ReadMark(NamedTuple):
    """Where a read of the owner's began: the unit's learned count, the load epoch."""

    learned: int
    epoch: int


@dataclass
class Update:
    """What one feed of the tracker asks of its owner, in this order."""

    #: The job whose ``JobRemoved`` arrived, as (job object path, result).
    finished_job: tuple[str, str] | None = None
    #: Units whose state changed: report them.
    changed: list[tuple[str, SystemdState]] = field(default_factory=list)
    #: Units whose state to fetch: pass them to :meth:`StateTracker.request_fetch`.
    fetch: list[str] = field(default_factory=list)


def _queued(changed: Mapping[str, Any], active: str) -> bool:
    """A stopped unit with a job queued (``Job`` is not ``(0, "/")``): the state of
    the moment the job was queued, about to change (not reported; the job's end
    always brings one more ``PropertiesChanged``, with the state it left)."""
    job = changed.get("Job")
    if job is None or active not in ("inactive", "failed"):
        return False
    value = job.value
    return isinstance(value, (list, tuple)) and bool(value) and value[0] != 0


class StateTracker:
    """The per-unit state cache fed with systemd's signals. See the module docs."""

    def __init__(self) -> None:
        self._owned: set[str] = set()
        self._load: dict[str, str] = {}
        self._active: dict[str, tuple[str, str]] = {}
        self._signals: dict[str, int] = {}  # PropertiesChanged seen per unit
        self._learned: dict[str, int] = {}  # ActiveState/SubState learned (signal or fetch)
        self._reported: dict[str, SystemdState] = {}
        # rewritten since systemd last loaded them: LoadState may change on the next load
        self._dirty: set[str] = set()
        self._fetching: set[str] = set()
        self._fetch_again: set[str] = set()
        #: bumped when cached LoadStates go stale (a daemon-reload, a file removed)
        self._epoch = 0

    # ------------------------------------------------------------ ownership
    def own(self, names: Iterable[str]) -> None:
        """The units with a file in the directory now: the only ones reported."""
        self._owned = set(names)

    def wrote(self, name: str) -> None:
        """``name``'s file was (re)written: owned, and its LoadState may change."""
        self._owned.add(name)
        self._dirty.add(name)

    def forget(self, name: str) -> None:
        """``name``'s file is gone: drop everything known about it."""
        self._owned.discard(name)
        self._dirty.discard(name)
        self._epoch += 1
        for cache in (self._load, self._active, self._signals, self._learned, self._reported):
            cache.pop(name, None)

    # ------------------------------------------------------------ signals
    def signal(self, path: str, interface: str, member: str, body: list[Any]) -> Update:
        """Feed one signal (its header fields and body)."""
        if member == "PropertiesChanged" and interface == PROPERTIES_IFACE:
            return self._properties_changed(path, body)
        if interface == MANAGER_IFACE and path == MANAGER_PATH:
            return self._manager_signal(member, body)
        return Update()

    def _properties_changed(self, path: str, body: list[Any]) -> Update:
        update = Update()
        if len(body) < 2 or body[0] != UNIT_IFACE:
            return update
        name = unit_name_of_path(path)
        if name is None or name not in self._owned:
            return update
        changed: Mapping[str, Any] = body[1]
        if "LoadState" in changed:
            self._load[name] = str(changed["LoadState"].value)
        active, sub = changed.get("ActiveState"), changed.get("SubState")
        if active is None or sub is None:
            if "LoadState" in changed:
                update.fetch.append(name)
            return update
        self._active[name] = (str(active.value), str(sub.value))
        self._signals[name] = self._signals.get(name, 0) + 1
        self._learned[name] = self._learned.get(name, 0) + 1
        if _queued(changed, self._active[name][0]):
            return update  # a start (or stop) job will change it: the next signal tells
        load = self._load.get(name)
        if load is None:
            if name not in self._fetching:  # a fetch in flight uses the new values
                update.fetch.append(name)
            return update
        self._report(name, SystemdState(load, *self._active[name]), update)
        return update

    def _manager_signal(self, member: str, body: list[Any]) -> Update:
        update = Update()
        if member == "JobRemoved" and len(body) >= 4:
            update.finished_job = (str(body[1]), str(body[3]))
        elif member == "UnitNew" and body and body[0] in self._dirty:
            # loaded anew from a rewritten file: LoadState may differ
            self._dirty.discard(str(body[0]))
            self._load.pop(str(body[0]), None)
        elif member == "Reloading" and body:
            if body[0]:
                self._epoch += 1
                self._dirty.clear()
                for name in self._owned:
                    self._load.pop(name, None)
            elif self._owned:
                update.fetch.extend(sorted(self._owned))
        return update

    # ------------------------------------------------------------ fetches
    def request_fetch(self, names: Iterable[str]) -> list[str]:
        """Of ``names``, those to fetch now (marked in flight); the others are
        in flight already and are fetched again once that fetch is done."""
        wanted = list(names)
        self._fetch_again.update(n for n in wanted if n in self._fetching)
        todo = [n for n in wanted if n not in self._fetching]
        self._fetching.update(todo)
        return todo

    def fetch_started(self, names: Iterable[str]) -> dict[str, int]:
        """The fetch of ``names`` is sent now: a mark to hand to :meth:`fetch_done`."""
        return {n: self._signals.get(n, 0) for n in names}

    def fetch_abandoned(self, names: Iterable[str]) -> None:
        """The fetch of ``names`` will not finish (cancelled)."""
        self._fetching.difference_update(names)

    def fetch_done(self, names: list[str], mark: Mapping[str, int],
                   rows: Iterable[FetchedRow]) -> Update:
        """The fetch of ``names`` answered ``rows`` (none if it failed)."""
        self._fetching.difference_update(names)
        update = Update()
        for name, load, active, sub in rows:
            if name not in self._owned:
                continue
            self._load[name] = load
            if self._signals.get(name, 0) != mark.get(name, 0) and name in self._active:
                # a signal came in meanwhile; systemd emits the final state
                # after any reply, so the latest signal wins
                active, sub = self._active[name]
            else:
                self._active[name] = (active, sub)
                self._learned[name] = self._learned.get(name, 0) + 1
            self._report(name, SystemdState(load, active, sub), update)
        again = [n for n in names if n in self._fetch_again]
        self._fetch_again.difference_update(again)
        update.fetch.extend(again)
        return update

    # ------------------------------------------------------------ reads
    def read_started(self, name: str) -> ReadMark:
        """A read of ``name``'s state for the owner (not a fetch of the tracker's
        own) is sent now: a mark to hand to :meth:`read_done`."""
        return ReadMark(self._learned.get(name, 0), self._epoch)

    def read_done(self, name: str, mark: ReadMark, fetched: SystemdState) -> SystemdState:
        """What that read returns: ``fetched``, unless the tracker learned
        ``name``'s state while it was in flight; then the tracker's state.

        The reply may have left systemd before the signal of a change the
        caller already got through ``on_change`` (systemd emits the final
        state after any reply); returning the older reply would let the caller
        put it over the newer state for good, as that change is never
        reported again. The reply's LoadState is kept for an owned unit that
        has none cached, unless cached LoadStates went stale meanwhile.
        """
        if (name in self._owned and name not in self._load and mark.epoch == self._epoch
                and fetched.load != "not-found"):
            self._load[name] = fetched.load
        if self._learned.get(name, 0) == mark.learned or name not in self._active:
            return fetched
        return SystemdState(self._load.get(name, fetched.load), *self._active[name])

    def _report(self, name: str, state: SystemdState, update: Update) -> None:
        if name not in self._owned or self._reported.get(name) == state:
            return
        self._reported[name] = state
        update.changed.append((name, state))
