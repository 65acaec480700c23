"""The keys a waiter on a few units holds: read once, then kept from its watches' events.

For each waited-on unit, four prefixes: its record, its placement, its states
(one key per machine) and its explanation. :meth:`UnitKeys.read` reads each
prefix (a unit's record and explanation with a get, its placement and states as
ranges) and keeps the revision of that read; :meth:`UnitKeys.apply` takes a
watch event into the table only when it is newer than the read of its prefix
(``mod_rev`` above that read's revision; for a key a get found, above its
``mod_rev``): an older event is in the read already, or overtaken by it. For a
key a get found absent, the read's revision is only bounded (by a range read
after it): an event between is read again. Events are applied only after the reads (the
waiter notes them meanwhile), so one that arrived while a read was in flight
is weighed against that read's revision, never dropped. A key whose value does
not decode is left out, as a read leaves it out. After the first read, a wake
costs no read (the watch's values are the new state); the waiter's watches
start before the reads, so no change falls between a read and a watch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from unitctl.client.views import StoredState
from unitctl.model import UnitRecord, UnitState
from unitctl.registry.keyspace import Record
from unitctl.registry.kv import Event
from unitctl.registry.poison import DECODE_ERRORS
from unitctl.registry.registry import Registry


class UnitKeys:
    """The decoded keys under the waited-on units' prefixes (see the module docs)."""

    def __init__(self, registry: Registry, names: tuple[str, ...]) -> None:
        self.registry = registry
        self.names = names
        #: key -> its decoded record
        self.records: dict[str, Record] = {}
        #: prefix -> (floor, ceiling) of its last read: an event at or below the floor
        #: is in it (or overtaken), one above the ceiling is newer, one between is read
        #: again
        self.read_revs: dict[str, tuple[int, int]] = {}

    def prefixes(self) -> list[str]:
        """The four prefixes of each unit (the waiter watches the same ones)."""
        keys = self.registry.keys
        return [p for n in self.names for p in (keys.unit(n), keys.placement(n),
                                                f"{keys.states()}{n}/", keys.explanation(n))]

    def _exact(self, prefix: str) -> bool:
        """A unit's record and explanation: one key, read with a get."""
        keys = self.registry.keys
        return any(prefix in (keys.unit(n), keys.explanation(n)) for n in self.names)

    async def read(self, prefixes: Iterable[str] | None = None) -> None:
        """Read ``prefixes`` (default: all) afresh: the single keys first, then the
        ranges, whose revision bounds the single reads' from above."""
        todo = sorted(self.prefixes() if prefixes is None else prefixes,
                      key=lambda p: not self._exact(p))
        got: dict[str, int] = {}
        for prefix in todo:
            self.records = {k: r for k, r in self.records.items() if self._prefix(k) != prefix}
            if not self._exact(prefix):
                await self._read_range(prefix)
                continue
            record = await self.registry.record(prefix)
            if record is not None:
                self.records[prefix] = record
                self.read_revs[prefix] = (record.mod_rev, record.mod_rev)
            else:
                got[prefix] = 0  # absent: bounded by the next range read
        if got:
            ceiling = (await self.registry.revision()) if all(self._exact(p) for p in todo) \
                else max(c for p, (_, c) in self.read_revs.items() if not self._exact(p))
            self.read_revs.update((p, (0, ceiling)) for p in got)

    async def refresh(self, events: Iterable[Event]) -> None:
        """Read every prefix not read yet; then take ``events``, reading again only
        the prefixes an event leaves in doubt."""
        if len(self.read_revs) < len(self.prefixes()):
            await self.read()
        again = self.apply(events)
        if again:
            await self.read(again)

    async def _read_range(self, prefix: str) -> None:
        found, rev = await self.registry.records(prefix)
        self.records.update((r.key, r) for r in found if self._prefix(r.key) == prefix)
        self.read_revs[prefix] = (rev, rev)

    def apply(self, events: Iterable[Event]) -> set[str]:
        """Take each event newer than the read of its prefix (in order: the last wins);
        return the prefixes to read again (an event the read may or may not hold)."""
        again: set[str] = set()
        for event in events:
            prefix = self._prefix(event.key)
            if prefix is None or prefix in again:
                continue
            floor, ceiling = self.read_revs.get(prefix, (event.mod_rev, event.mod_rev))
            if event.mod_rev <= floor:
                continue
            if event.mod_rev <= ceiling:
                again.add(prefix)
                continue
            try:
                record = self.registry.keyspace.decode_event(event)
            except DECODE_ERRORS:
                record = None
            if record is None or record.value is None:
                self.records.pop(event.key, None)
            else:
                self.records[event.key] = record
        return again

    def _prefix(self, key: str) -> str | None:
        """The waited-on prefix ``key`` belongs to (exactly: not a longer name's key)."""
        keys = self.registry.keys
        for n in self.names:
            if key in (keys.unit(n), keys.placement(n), keys.explanation(n)):
                return key
            states = f"{keys.states()}{n}/"
            if key.startswith(states) and "/" not in key[len(states):]:
                return states
        return None

    # -- the tables the waiter's view shows -----------------------------------
    def units(self) -> dict[str, UnitRecord]:
        return {n: v for n in self.names
                if isinstance(v := self._value(self.registry.keys.unit(n)), UnitRecord)}

    def placements(self) -> dict[str, str]:
        return {n: v for n in self.names
                if isinstance(v := self._value(self.registry.keys.placement(n)), str)}

    def explanations(self) -> dict[str, dict[str, str]]:
        return {n: v for n in self.names
                if isinstance(v := self._value(self.registry.keys.explanation(n)), dict)}

    def states(self) -> dict[str, dict[str, StoredState]]:
        out: dict[str, dict[str, StoredState]] = {}
        for n in self.names:
            states = f"{self.registry.keys.states()}{n}/"
            for key, rec in self.records.items():
                if key.startswith(states) and isinstance(rec.value, UnitState):
                    out.setdefault(n, {})[rec.value.machine_id] = StoredState(rec.value,
                                                                             rec.mod_rev)
        return out

    def _value(self, key: str) -> object:
        rec = self.records.get(key)
        return None if rec is None else rec.value


def unit_keys(registry: Registry, names: Sequence[str]) -> UnitKeys:
    """The table for ``names`` (deduplicated, in order)."""
    return UnitKeys(registry, tuple(dict.fromkeys(names)))
