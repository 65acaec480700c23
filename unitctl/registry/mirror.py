"""The engine's live copy of the keys it schedules from, kept by watches.

One read per prefix when the engine takes the lead, then every change arrives
as a watch event and is applied in place, so an engine round costs what
changed, not the size of the registry (fleet re-read everything on every
tick). The engine still rebuilds the mirror from scratch every resync period,
as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

from unitctl.model import Machine, ScheduleEntry, UnitRecord
from unitctl.registry import codec
from unitctl.registry.kv import Event, EventKind, KeyValue
from unitctl.registry.registry import EngineView, Registry


class Mirror:
    """units/, placements/, schedule/, machines/ and explain/, decoded and current."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        k = registry.keys
        self.units: dict[str, UnitRecord] = {}
        self.unit_revs: dict[str, int] = {}
        self.placements: dict[str, str] = {}
        self.placement_revs: dict[str, int] = {}
        self.schedules: dict[str, dict[str, ScheduleEntry]] = {}
        self.machines: dict[str, Machine] = {}
        self.explanations: dict[str, dict[str, str]] = {}
        #: raw values of the keys the engine itself writes (for :meth:`settle`)
        self.written: dict[str, bytes] = {}
        #: set when units/ or machines/ change: time for a round
        self.trigger = asyncio.Event()
        self._changed = asyncio.Event()
        self.revision = 0
        self._handlers: dict[str, Callable[[str, KeyValue | None], None]] = {
            k.units(): self._unit, k.placements(): self._placement,
            k.schedules(): self._scheduled, k.machines(): self._machine,
            k.explanations(): self._explanation}
        self._tasks: list[asyncio.Task[None]] = []
        self._read_rev: dict[str, int] = {}

    async def start(self) -> None:
        """Read every prefix, then follow them all with ONE watch.

        One watch over the whole key prefix delivers events in revision order:
        separate watches may lag each other (etcd syncs a watch that starts in
        the past on a 100 ms timer), and a round could then see new units but
        not the machines registered before them. Events a prefix's read
        already reflects are skipped.
        """
        for prefix, handler in self._handlers.items():
            rng = await self.registry.kv.get_prefix(prefix)
            for kv in rng.kvs:
                handler(self.registry.keys.tail(kv.key, prefix), kv)
            self._read_rev[prefix] = rng.revision
        self.revision = max(self._read_rev.values())
        self._tasks.append(asyncio.create_task(self._follow(min(self._read_rev.values()) + 1)))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def check(self) -> None:
        """Re-raise the error of a watch that died (the mirror is then stale)."""
        for t in self._tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]

    async def _follow(self, rev: int) -> None:
        triggers = (self.registry.keys.units(), self.registry.keys.machines())
        async for batch in self.registry.watch(self.registry.keys.prefix, rev):
            for ev in batch:
                prefix = next((p for p in self._handlers if ev.key.startswith(p)), None)
                if prefix is None or ev.mod_rev <= self._read_rev[prefix]:
                    continue  # states/, bodies/, ... or already in the initial read
                self._handlers[prefix](self.registry.keys.tail(ev.key, prefix), _as_kv(ev))
                self.revision = max(self.revision, ev.mod_rev)
                if prefix in triggers:
                    self.trigger.set()
            self._changed.set()

    async def settle(self, expected: Mapping[str, bytes | None], timeout: float) -> bool:
        """Wait until the engine's own writes are visible (True) or ``timeout`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(self.written.get(k) != v for k, v in expected.items()):
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
            self.check()
        return True

    def view(self) -> EngineView:
        """A consistent-enough copy for one round (commits are guarded by revisions)."""
        return EngineView(self.revision, dict(self.units), dict(self.unit_revs),
                          dict(self.placements), dict(self.placement_revs),
                          {m: dict(e) for m, e in self.schedules.items()},
                          dict(self.machines), dict(self.explanations))

    # -- handlers: (name under the prefix, the key or None when deleted) ----
    def _unit(self, name: str, kv: KeyValue | None) -> None:
        if kv is None:
            self.units.pop(name, None)
            self.unit_revs.pop(name, None)
        else:
            self.units[name] = codec.decode_unit(kv.key, name, kv.value)
            self.unit_revs[name] = kv.mod_rev

    def _placement(self, name: str, kv: KeyValue | None) -> None:
        key = self.registry.keys.placement(name)
        if kv is None:
            self.placements.pop(name, None)
            self.placement_revs.pop(name, None)
            self.written.pop(key, None)
        else:
            self.placements[name] = kv.value.decode()
            self.placement_revs[name] = kv.mod_rev
            self.written[key] = kv.value

    def _scheduled(self, tail: str, kv: KeyValue | None) -> None:
        machine, _, name = tail.partition("/")
        key = self.registry.keys.scheduled(machine, name)
        if kv is None:
            entries = self.schedules.get(machine, {})
            entries.pop(name, None)
            if not entries:
                self.schedules.pop(machine, None)
            self.written.pop(key, None)
        else:
            entry = codec.decode_entry(kv.key, name, kv.value)
            self.schedules.setdefault(machine, {})[name] = entry
            self.written[key] = kv.value

    def _machine(self, mid: str, kv: KeyValue | None) -> None:
        if kv is None:
            self.machines.pop(mid, None)
        else:
            self.machines[mid] = codec.decode_machine(kv.key, kv.value)

    def _explanation(self, name: str, kv: KeyValue | None) -> None:
        key = self.registry.keys.explanation(name)
        if kv is None:
            self.explanations.pop(name, None)
            self.written.pop(key, None)
        else:
            self.explanations[name] = codec.decode_explanation(kv.key, kv.value)
            self.written[key] = kv.value


def _as_kv(ev: Event) -> KeyValue | None:
    if ev.kind is EventKind.DELETE:
        return None
    # watch events carry the key's mod revision; create/version are not needed here
    return KeyValue(ev.key, ev.value, 0, ev.mod_rev, 0)
