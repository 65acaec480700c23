"""Waiting until the cluster reports what a command asked for.

A :data:`Predicate` tells, from a :class:`~unitctl.client.views.Snapshot`,
whether a unit reached the state waited for (:mod:`.predicates`).
:class:`Waiter` watches **only the keys it waits on** (each unit's record,
placement, states and explanation: per-unit prefixes for a few units, those
four prefixes for many; opened as :mod:`.watchopen` says, so no change falls
between the watches and the read), reads the cluster once, and on a change to
one of them: for a few units, takes the new values from the watch's events
(:mod:`.unitkeys`: no read after a wake); for many, re-reads only what
changed. A watch that breaks is reopened after a full re-read. One
``--block-attempts`` attempt lasts ``attempt_seconds``; while a unit waits for
a machine and the engine explained why it cannot have one, the reasons are
shown (again only when they change).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from unitctl.client.unitkeys import UnitKeys, unit_keys
from unitctl.client.views import (
    Predicate,
    Snapshot,
    StoredState,
    group_states,
    read_snapshot,
)
from unitctl.errors import RegistryUnavailable, UnitctlError, UnschedulableError, WaitTimeout
from unitctl.legend import format_reasons
from unitctl.model import Machine, UnitRecord, UnitState
from unitctl.registry.kv import Event
from unitctl.registry.registry import Registry

Say = Callable[[str], None]
V = TypeVar("V")

#: Up to this many units, the waiter watches each unit's own keys; above, the prefixes.
PER_UNIT_WATCHES = 4
#: A filter of one batch of events: True when it changed a waited-on key (a wake).
Relevant = Callable[[list[Event]], bool]


class Watches(Protocol):
    """A waiter's open watches (every change after their revision comes on them)."""

    def broken(self) -> bool:
        """True once a watch ended (the view must be read afresh)."""
        ...

    async def wait(self, timeout: float) -> None:
        """Return once a relevant batch came (maybe already) or ``timeout`` passed."""
        ...

    async def close(self) -> None: ...


class Watching(Protocol):
    """How a waiter opens its watches, tells the time and pauses (asyncio or blocking)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    async def open(self, registry: Registry, prefixes: Sequence[str],
                   relevant: Relevant) -> tuple[Watches, int]:
        """Watch ``prefixes``; return the watches and the revision they start after
        (a read made after this returns sees every change up to it). Raises
        RegistryUnavailable."""
        ...


# ------------------------------------------------------------------ the view


class Changes:
    """Which waited-on keys changed since the view was last read (``events``: the
    events behind them, in order; a view of a few units applies them)."""

    __slots__ = ("events", "explanations", "placements", "states", "units")

    def __init__(self, units: set[str] | None = None, explanations: set[str] | None = None,
                 placements: bool = False, states: bool = False,
                 events: list[Event] | None = None) -> None:
        self.units: set[str] = set() if units is None else units
        self.explanations: set[str] = set() if explanations is None else explanations
        self.placements = placements
        self.states = states
        self.events: list[Event] = [] if events is None else events

    def take(self) -> Changes:
        """A copy of the changes noted so far; this one starts empty again.

        The watches keep noting into this same object, so it is emptied in
        place, never replaced.
        """
        taken = Changes(set(self.units), set(self.explanations), self.placements, self.states,
                        list(self.events))
        self.units.clear()
        self.explanations.clear()
        self.events.clear()
        self.placements = self.states = False
        return taken


class WaitView:
    """The cluster as a waiter sees it, refreshed key family by key family (``keys``:
    a few units' own keys, kept from the watches' events, :mod:`.unitkeys`)."""

    def __init__(self, registry: Registry, revision: int, units: dict[str, UnitRecord],
                 placements: dict[str, str], states: dict[str, dict[str, StoredState]],
                 explanations: dict[str, dict[str, str]], machines: dict[str, Machine],
                 keys: UnitKeys | None = None) -> None:
        self.registry = registry
        self.revision = revision
        self.units = units
        self.placements = placements
        self.states = states
        self.explanations = explanations
        self.machines = machines
        self.keys = keys

    @classmethod
    async def read(cls, registry: Registry, names: Sequence[str] = (),
                   revision: int = 0) -> WaitView:
        """Read what a waiter on ``names`` needs: for a few units, only their own
        keys (``revision``: read just before), kept from then on from the watches'
        events; else a full snapshot."""
        if names and len(names) <= PER_UNIT_WATCHES:
            view = cls(registry, revision, {}, {}, {}, {}, {}, unit_keys(registry, names))
            await view.refresh(Changes(), names)
            return view
        s = await read_snapshot(registry)
        return cls(registry, s.revision, dict(s.units), dict(s.placements),
                   {n: dict(per) for n, per in s.states.items()},
                   {n: dict(r) for n, r in s.explanations.items()}, dict(s.machines))

    def snapshot(self) -> Snapshot:
        """The view as a snapshot, for the predicates."""
        return Snapshot(self.revision, self.units, self.placements, self.states,
                        self.explanations, self.machines)

    async def refresh(self, changed: Changes, names: Sequence[str] = ()) -> None:
        """Re-read what ``changed`` names, and only that (for a few units, read
        nothing after the first read: take the events ``changed`` holds)."""
        reg = self.registry
        if self.keys is not None:
            await self._apply(self.keys, changed)
            return
        for name in sorted(changed.units):
            _put(self.units, name, await reg.get_unit(name))
        for name in sorted(changed.explanations):
            _put(self.explanations, name, await reg.get_explanation(name))
        if changed.placements:
            await self._placements(names)
        if changed.states:
            await self._states(names)
        if changed.placements and not set(self.placements.values()) <= set(self.machines):
            self.machines = {m.id: m for m in await reg.list_machines()}

    async def _apply(self, keys: UnitKeys, changed: Changes) -> None:
        """A few units' view: read once, then the watches' events; machines read
        when a placement names one not known yet."""
        await keys.refresh(changed.events)
        self.units, self.placements = keys.units(), keys.placements()
        self.states, self.explanations = keys.states(), keys.explanations()
        if not set(self.placements.values()) <= set(self.machines):
            self.machines = {m.id: m for m in await self.registry.list_machines()}

    async def _placements(self, names: Sequence[str]) -> None:
        if not names:
            self.placements = await self.registry.list_placements()
            return
        keys = self.registry.keys
        for name in names:
            records, _ = await self.registry.records(keys.placement(name))
            found = [r.value for r in records
                     if r.key == keys.placement(name) and isinstance(r.value, str)]
            _put(self.placements, name, found[0] if found else None)

    async def _states(self, names: Sequence[str]) -> None:
        if not names:
            self.states = group_states(await self.registry.states_with_revs())
            return
        for name in names:
            records, _ = await self.registry.records(self.registry.keys.unit_states(name))
            rows = [(r.mod_rev, r.value) for r in records if isinstance(r.value, UnitState)]
            _put(self.states, name, group_states(rows).get(name))


def _put(table: dict[str, V], name: str, value: V | None) -> None:
    if value is None:
        table.pop(name, None)
    else:
        table[name] = value


# ------------------------------------------------------------------ the watches


def watch_prefixes(registry: Registry, names: Sequence[str]) -> list[str]:
    """The prefixes a waiter on ``names`` watches."""
    keys = registry.keys
    if len(names) > PER_UNIT_WATCHES:
        return [keys.units(), keys.placements(), keys.states(), keys.explanations()]
    return [p for n in names for p in (keys.unit(n), keys.placement(n),
                                       f"{keys.states()}{n}/", keys.explanation(n))]


def note(registry: Registry, names: set[str], changes: Changes, event: Event) -> bool:
    """Record ``event`` in ``changes`` when it is about a waited-on unit."""
    keys, key = registry.keys, event.key
    for base in (keys.units(), keys.placements(), keys.states(), keys.explanations()):
        if key.startswith(base):
            tail = key[len(base):]
            break
    else:
        return False
    if base == keys.states():
        tail = tail.rpartition("/")[0]
    if tail not in names:
        return False
    changes.events.append(event)
    if base == keys.units():
        changes.units.add(tail)
    elif base == keys.explanations():
        changes.explanations.add(tail)
    elif base == keys.placements():
        changes.placements = True
    else:
        changes.states = True
    return True


# ------------------------------------------------------------------ the waiter


class Waiter:
    """Waits until a predicate holds for every unit (see the module docstring).

    ``watching``: how the watches are opened and waited on, under asyncio
    (:class:`~.watchopen.AsyncWatching`, the default) or blocking
    (:mod:`.blockwatch`). ``outage``: the error of an etcd outage the wait is
    riding out ("" while etcd answers).
    """

    def __init__(self, registry: Registry, pending: list[str], predicate: Predicate,
                 out: Say, err: Say, attempt_seconds: float = 1.0,
                 watching: Watching | None = None) -> None:
        self.registry = registry
        self.pending = pending
        self.predicate = predicate
        self.out = out
        self.err = err
        self.attempt_seconds = attempt_seconds
        self.watching = watching
        self.view: WaitView | None = None
        self.changes = Changes()
        self.shown: dict[str, Mapping[str, str]] = {}
        self.outage = ""
        self._watches: Watches | None = None

    async def attempt(self) -> bool:
        """Wait one attempt; return True once no unit is pending.

        etcd unreachable (a restart, a lost leader) does not end the wait: what
        the command wrote is stored, and fleetctl too waits through errors until
        its attempts run out. It is said once on stderr, and the view is read
        afresh (watches reopened) once etcd answers again."""
        how = self._how()
        deadline = how.now() + self.attempt_seconds
        while True:
            try:
                snap = await self.update()
            except RegistryUnavailable as exc:
                await self._unreachable(exc)
            else:
                if self.outage:
                    self.err("etcd answers again; still waiting")
                    self.outage = ""
                self.pending = self.check(snap)
                if not self.pending:
                    return True
            remaining = deadline - how.now()
            if remaining <= 0:
                return False
            if self.outage or self._watches is None:
                await how.sleep(min(remaining, self.attempt_seconds / 4))
            else:
                await self._watches.wait(remaining)

    def _how(self) -> Watching:
        if self.watching is None:
            from unitctl.client.watchopen import AsyncWatching

            self.watching = AsyncWatching()
        return self.watching

    async def _unreachable(self, exc: RegistryUnavailable) -> None:
        """Drop the view and the watches (the next update reads and watches afresh);
        say so, once per outage."""
        await self.close()
        self.view = None
        if not self.outage:
            self.err(f"{exc}; still waiting (what was written is stored)")
        self.outage = str(exc)

    async def update(self) -> Snapshot:
        """Bring the view up to date: re-read what changed, or all if a watch broke."""
        scope = self._scope()
        if self.view is not None and self._watches is not None and not self._watches.broken():
            await self.view.refresh(self.changes.take(), scope)
            return self.view.snapshot()
        if self.view is not None:  # a broken watch: re-read everything, then watch again
            await self.close()
            await self._how().sleep(self.attempt_seconds / 4)
        self.changes.take()
        names = set(self.pending)
        self._watches, revision = await self._how().open(
            self.registry, watch_prefixes(self.registry, self.pending),
            lambda batch: bool([e for e in batch if note(self.registry, names, self.changes, e)]))
        self.view = await WaitView.read(self.registry, scope, revision)
        return self.view.snapshot()

    def _scope(self) -> list[str]:
        """The units whose keys alone are read (none: read every unit's)."""
        return self.pending if len(self.pending) <= PER_UNIT_WATCHES else []

    def check(self, snap: Snapshot) -> list[str]:
        """The units still pending; print the messages of those that are done."""
        left = []
        for name in self.pending:
            msg = self.predicate(snap, name)
            if msg is not None:
                if msg:
                    self.out(msg)
                continue
            left.append(name)
            reasons = snap.unplaceable(name)
            if reasons is not None and self.shown.get(name) != reasons:
                self.shown[name] = reasons
                self.err(f"Unit {name} cannot be placed:")
                for line in format_reasons(reasons):
                    self.err(f"  {line}")
        return left

    async def timeout(self, what: str) -> UnitctlError:
        """The error for attempts that ran out: the reasons, or a plain timeout."""
        snap = await self.update()
        blocked = [(n, r) for n in self.pending if (r := snap.unplaceable(n)) is not None]
        if blocked:
            parts = [f"Unit {n} cannot be placed: " + "; ".join(format_reasons(r))
                     for n, r in blocked]
            return UnschedulableError(". ".join(parts))
        units = ", ".join(self.pending)
        return WaitTimeout(f"timed out waiting for unit{'s' if len(self.pending) > 1 else ''} "
                           f"{units} to {what}")

    async def close(self) -> None:
        """Stop the watches."""
        watches, self._watches = self._watches, None
        if watches is not None:
            await watches.close()


async def wait_for(waiter: Waiter, attempts: int, what: str) -> None:
    """Run ``waiter`` until every unit is done, or ``attempts`` ran out (0: for ever).

    Raises:
        UnschedulableError: attempts ran out and a unit has no machine.
        WaitTimeout: attempts ran out.
    """
    if not waiter.pending:
        return
    try:
        attempt = 0
        while not await waiter.attempt():
            attempt += 1
            if attempts and attempt >= attempts:
                raise await waiter.timeout(what)
    finally:
        await waiter.close()
