"""The engine's copy of the keys it schedules from: read once, or kept live by a watch.

:func:`read_view` reads an :class:`EngineView` straight from the registry.
A :class:`Mirror` reads every prefix once when the engine takes the lead,
then applies every change as a watch event, so an engine round costs what
changed, not the size of the registry (fleet re-read everything on every
tick); keys outside the prefixes it holds (agents' states, requests, replies,
bodies...) are skipped before decoding and wake nothing. :meth:`Mirror.take_changes`
tells what was applied since the engine last looked (the incremental round,
:mod:`unitctl.engine.fastround`). The engine still rebuilds the mirror from
scratch every resync period, as a safety net. A watch that ends (for any
reason) sets :attr:`Mirror.trigger` at once, and :meth:`Mirror.check` then raises.

Poison keys: a key whose value does not decode is reported once and skipped,
never raised. An invalid ``units/`` key *freezes* that unit: the view leaves
out its placement and schedule entries, so no round moves or deletes them
until the key is valid again or destroyed. An invalid ``placements/`` key
keeps its revision, so the next placement of that unit overwrites it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from unitctl.engine.view import EngineView
from unitctl.failover import FailureRecord, MoveRecord
from unitctl.loop import raise_if_ended, wake_or_timeout, watch_wakes
from unitctl.model import Machine, ScheduleEntry, UnitRecord
from unitctl.registry import poison
from unitctl.registry.dynmeta import merged
from unitctl.registry.failures import FailureKeys, decode_failure_kv, decode_moves_kv, failure_store
from unitctl.registry.keyspace import Entity, Record
from unitctl.registry.kv import Event, EventKind, KeyValue
from unitctl.registry.poison import InvalidKey
from unitctl.registry.registry import Registry
from unitctl.volumes import VolumeRecord

#: entities whose change calls for an engine round
ROUND_ENTITIES = (Entity.UNIT, Entity.MACHINE, Entity.METADATA)
#: entities the engine itself writes
WRITTEN_ENTITIES = (Entity.PLACEMENT, Entity.SCHEDULED, Entity.EXPLANATION)


@dataclass
class Changes:
    """What the watch applied since the engine last looked (:meth:`Mirror.take_changes`).

    Attributes:
        units: the names of the units whose key changed (put, deleted).
        written: the placement, schedule and explanation keys that changed (the
            engine's own writes, unless someone else wrote them too).
        other: anything else changed: machines, metadata, failures, moves,
            volumes, a key that does not decode.
    """

    units: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    other: bool = False


async def read_view(registry: Registry) -> EngineView:
    """Read everything the engine needs; the units read carry their revisions."""
    read = await registry.read_units()
    placements, placement_revs = await registry.placements_with_revs()
    machines = {m.id: m for m in merged(await registry.list_machines(),
                                        await registry.metadata.all())}
    failures = failure_store(registry)
    # The view's revision is that of its FIRST read: a watch from revision+1
    # then replays anything that changed while the later reads ran.
    return frozen(EngineView(read.revision, read.units, read.revs, placements, placement_revs,
                             await registry.list_schedules(), machines,
                             await registry.list_explanations(),
                             await failures.all_failures(), await failures.all_moves(),
                             await registry.volumes.all()),
                  set(read.invalid))


def frozen(view: EngineView, invalid_units: set[str]) -> EngineView:
    """``view`` without the placements and schedule entries of invalid units."""
    if not invalid_units:
        return view
    return EngineView(
        view.revision, view.units, view.unit_revs,
        {u: m for u, m in view.placements.items() if u not in invalid_units},
        {u: r for u, r in view.placement_revs.items() if u not in invalid_units},
        {m: {u: e for u, e in entries.items() if u not in invalid_units}
         for m, entries in view.schedules.items()},
        view.machines, view.explanations, view.failures, view.moves, view.volumes)


class Mirror:
    """units/, placements/, schedule/, machines/ (with the API-set metadata/ laid over
    them, as fleet did) and explain/, decoded and current."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.units: dict[str, UnitRecord] = {}
        self.unit_revs: dict[str, int] = {}
        self.placements: dict[str, str] = {}
        self.placement_revs: dict[str, int] = {}
        self.schedules: dict[str, dict[str, ScheduleEntry]] = {}
        self.machines: dict[str, Machine] = {}
        self.explanations: dict[str, dict[str, str]] = {}
        #: the failure policy's keys (failures/, moves/), applied as they change
        self.failures: dict[str, dict[str, FailureRecord]] = {}
        self.moves: dict[str, tuple[MoveRecord, ...]] = {}
        #: the volume records (volumes/), applied as they change
        self.volumes: dict[str, VolumeRecord] = {}
        self._failure_keys = FailureKeys(registry.keys.prefix)
        #: metadata set through the API: machine -> key -> value
        self.metadata: dict[str, dict[str, str]] = {}
        #: units whose key does not decode: name -> why (their entries are frozen)
        self.invalid_units: dict[str, str] = {}
        #: raw values of the keys the engine itself writes (for :meth:`settle`)
        self.written: dict[str, bytes] = {}
        #: what changed since the engine last looked (:meth:`take_changes`)
        self.changes = Changes()
        #: set when units/ or machines/ change, or the watch ended: time for a round
        self.trigger = asyncio.Event()
        #: the loop time of the last change that set :attr:`trigger` (0: none yet)
        self.changed_at = 0.0
        self._changed = asyncio.Event()
        self.revision = 0
        self._handlers: dict[Entity, Callable[[Record], None]] = {
            Entity.UNIT: self._unit, Entity.PLACEMENT: self._placement,
            Entity.SCHEDULED: self._scheduled, Entity.MACHINE: self._machine,
            Entity.EXPLANATION: self._explanation, Entity.METADATA: self._metadata}
        self._stack = contextlib.AsyncExitStack()
        self._watch: asyncio.Task[None] | None = None
        self._read_rev: dict[Entity, int] = {}

    async def start(self) -> None:
        """Read every prefix, then follow them all with ONE watch.

        One watch over the whole key prefix delivers events in revision order:
        separate watches may lag each other (etcd syncs a watch that starts in
        the past on a 100 ms timer), and a round could then see new units but
        not the machines registered before them. Events a prefix's read
        already reflects are skipped.
        """
        keys = self.registry.keys
        prefixes = {Entity.UNIT: keys.units(), Entity.PLACEMENT: keys.placements(),
                    Entity.SCHEDULED: keys.schedules(), Entity.MACHINE: keys.machines(),
                    Entity.EXPLANATION: keys.explanations(), Entity.METADATA: keys.metadata()}
        for entity, prefix in prefixes.items():
            records, bad, rev = await self.registry.scan(prefix)
            for record in records:
                self._handlers[entity](record)
            for key in bad:
                self._invalid(key)
            self._read_rev[entity] = rev
        store = failure_store(self.registry)
        self.failures, self.moves = await store.all_failures(), dict(await store.all_moves())
        self.volumes = await self.registry.volumes.all()
        self.revision = max(self._read_rev.values())
        events = self._follow(min(self._read_rev.values()) + 1)
        self._watch = await self._stack.enter_async_context(watch_wakes(events, self._changed))

    async def close(self) -> None:
        await self._stack.aclose()
        self._watch = None

    def check(self) -> None:
        """Raise if the watch has ended (its error, or RegistryUnavailable): we are stale."""
        if self._watch is not None:
            raise_if_ended(self._watch)

    async def _follow(self, rev: int) -> AsyncIterator[None]:
        """Apply the watch's events; yield once per batch (the pump wakes :meth:`settle`)."""
        keyspace = self.registry.keyspace
        wanted = self._wanted_prefixes()
        try:
            async for batch in self.registry.watch(self.registry.keys.prefix, rev):
                relevant = [ev for ev in batch if ev.key.startswith(wanted)]
                if not relevant:
                    continue  # states/, requests/, replies/, bodies/...: not scheduling's
                for ev in relevant:
                    if self._failure_event(ev) or self._volume_event(ev):
                        self.changes.other = True
                        self._triggered()
                        continue
                    try:
                        record = keyspace.decode_event(ev)
                    except poison.DECODE_ERRORS as exc:
                        record = None
                        if self._invalid(poison.invalid(ev.key, ev.mod_rev, exc)):
                            self._triggered()
                    if self._apply(record):
                        self._triggered()
                yield
        finally:
            self.trigger.set()  # a watch that ends wakes the rounds at once

    def _triggered(self) -> None:
        """A change calls for a round: set :attr:`trigger`, note when."""
        self.trigger.set()
        self.changed_at = asyncio.get_running_loop().time()

    def _wanted_prefixes(self) -> tuple[str, ...]:
        """The prefixes whose keys the mirror holds (every other key is skipped undecoded)."""
        keys = self.registry.keys
        return (keys.units(), keys.placements(), keys.schedules(), keys.machines(),
                keys.explanations(), keys.metadata(), self._failure_keys.failures(),
                self._failure_keys.moves(), self.registry.volumes.prefix)

    def take_changes(self) -> Changes:
        """What changed since the last call (or since the mirror was read); starts afresh."""
        taken, self.changes = self.changes, Changes()
        return taken

    def _failure_event(self, ev: Event) -> bool:
        """Apply a change of a ``failures/`` or ``moves/`` key; True when it was one.

        These keys are replayed from before their read (puts carry whole values,
        so the last event wins); a value that does not decode counts as absent.
        """
        keys = self._failure_keys
        kv = KeyValue(ev.key, ev.value, 0, ev.mod_rev, 0)
        deleted = ev.kind is EventKind.DELETE
        if (ref := keys.parse_failure(ev.key)) is not None:
            unit, machine = ref
            rec = None if deleted else decode_failure_kv(keys, kv)
            records = self.failures.setdefault(unit, {})
            if rec is None:
                records.pop(machine, None)
            else:
                records[machine] = rec
            if not records:
                del self.failures[unit]
            return True
        if (name := keys.parse_moves(ev.key)) is not None:
            got = None if deleted else decode_moves_kv(keys, kv)
            if got is None:
                self.moves.pop(name, None)
            else:
                self.moves[name] = got[1]
            return True
        return False

    def _apply(self, record: Record | None) -> bool:
        """Apply one watched change; True when it calls for a round (units/, machines/,
        metadata/)."""
        if record is None or record.ref.entity not in self._handlers:
            return False  # states/, bodies/, ...
        entity = record.ref.entity
        if record.mod_rev <= self._read_rev[entity]:
            return False  # already in the initial read
        self._handlers[entity](record)
        self.revision = max(self.revision, record.mod_rev)
        self._note(entity, record.ref.name, record.key)
        return entity in ROUND_ENTITIES

    def _note(self, entity: Entity, name: str, key: str) -> None:
        """Record one applied change in :attr:`changes`."""
        if entity is Entity.UNIT:
            self.changes.units.add(name)
        elif entity in WRITTEN_ENTITIES:
            self.changes.written.add(key)
        else:
            self.changes.other = True

    def _invalid(self, bad: InvalidKey) -> bool:
        """Skip a key that does not decode (see the module doc); True: time for a round."""
        ref = self.registry.keyspace.parse(bad.key)
        if ref is None or ref.entity not in self._handlers:
            return False
        if bad.mod_rev <= self._read_rev.get(ref.entity, 0):
            return False  # already in the initial read
        self._handlers[ref.entity](Record(bad.key, ref, None, b"", bad.mod_rev))
        self.changes.other = True  # the fast round leaves poison to a full one
        if ref.entity is Entity.UNIT:
            self.invalid_units[ref.name] = bad.reason
        elif ref.entity is Entity.PLACEMENT:
            self.placement_revs[ref.name] = bad.mod_rev
        self.revision = max(self.revision, bad.mod_rev)
        return ref.entity in ROUND_ENTITIES

    async def settle(self, expected: Mapping[str, bytes | None], timeout: float) -> bool:
        """Wait until the engine's own writes are visible (True) or ``timeout`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(self.written.get(k) != v for k, v in expected.items()):
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            await wake_or_timeout(self._changed, left)
            self.check()
        return True

    def view(self) -> EngineView:
        """A consistent-enough copy for one round (commits are guarded by revisions)."""
        return frozen(EngineView(self.revision, dict(self.units), dict(self.unit_revs),
                                 dict(self.placements), dict(self.placement_revs),
                                 {m: dict(e) for m, e in self.schedules.items()},
                                 self._machines(), dict(self.explanations),
                                 {u: dict(r) for u, r in self.failures.items()},
                                 dict(self.moves), dict(self.volumes)),
                      set(self.invalid_units))

    def _volume_event(self, ev: Event) -> bool:
        """Apply a change of a ``volumes/`` key; True when it was one (a value that
        does not decode counts as absent)."""
        store = self.registry.volumes
        name = store.name_of(ev.key)
        if name is None:
            return False
        got = None
        if ev.kind is not EventKind.DELETE:
            got = store.records([KeyValue(ev.key, ev.value, 0, ev.mod_rev, 0)]).get(name)
        if got is None:
            self.volumes.pop(name, None)
        else:
            self.volumes[name] = got
        return True

    def _machines(self) -> dict[str, Machine]:
        """The machines, each with the API-set metadata laid over its own."""
        return {m.id: m for m in merged(self.machines.values(), self.metadata)}

    # -- handlers: one decoded key (value None when it was deleted) -------
    def _unit(self, r: Record) -> None:
        name = r.ref.name
        self.invalid_units.pop(name, None)
        if isinstance(r.value, UnitRecord):
            self.units[name] = r.value
            self.unit_revs[name] = r.mod_rev
        else:
            self.units.pop(name, None)
            self.unit_revs.pop(name, None)

    def _placement(self, r: Record) -> None:
        name = r.ref.name
        if isinstance(r.value, str):
            self.placements[name] = r.value
            self.placement_revs[name] = r.mod_rev
            self.written[r.key] = r.data
        else:
            self.placements.pop(name, None)
            self.placement_revs.pop(name, None)
            self.written.pop(r.key, None)

    def _scheduled(self, r: Record) -> None:
        machine, name = r.ref.machine, r.ref.name
        if isinstance(r.value, ScheduleEntry):
            self.schedules.setdefault(machine, {})[name] = r.value
            self.written[r.key] = r.data
        else:
            entries = self.schedules.get(machine, {})
            entries.pop(name, None)
            if not entries:
                self.schedules.pop(machine, None)
            self.written.pop(r.key, None)

    def _machine(self, r: Record) -> None:
        if isinstance(r.value, Machine):
            self.machines[r.ref.name] = r.value
        else:
            self.machines.pop(r.ref.name, None)

    def _metadata(self, r: Record) -> None:
        machine, key = r.ref.machine, r.ref.name
        if isinstance(r.value, str):
            self.metadata.setdefault(machine, {})[key] = r.value
            return
        values = self.metadata.get(machine, {})
        values.pop(key, None)
        if not values:
            self.metadata.pop(machine, None)

    def _explanation(self, r: Record) -> None:
        if isinstance(r.value, dict):
            self.explanations[r.ref.name] = r.value
            self.written[r.key] = r.data
        else:
            self.explanations.pop(r.ref.name, None)
            self.written.pop(r.key, None)
