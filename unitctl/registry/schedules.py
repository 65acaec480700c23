"""Schedules, placements and explanations: the engine-owned part of the registry.

``placements/<unit>`` names the machine of a non-global unit,
``schedule/<machine>/<unit>`` is what one agent must run (the only prefix an
agent watches) and ``explain/<unit>`` says why a unit could not be placed.
The engine writes them with :meth:`ScheduleStore.commit`: transactions of
guarded groups, each also conditioned on the engine still leading.
Every read skips (and reports once) a key whose value does not decode.

An agent reads its schedule once (:meth:`ScheduleStore.get_schedule`) and then
keeps it current from its watch's own events (:meth:`ScheduleStore.apply_events`):
no read per change. Applying the events from the read's revision on gives
what a new read would (a put whose value does not decode leaves the entry
out, as the read skips it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

from unitctl.errors import ConflictError
from unitctl.model import ScheduleEntry
from unitctl.record import Frozen, init
from unitctl.registry import blocking, poison
from unitctl.registry.keys import Keys
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.kv import KV, Compare, Delete, Event, EventKind, Group, KeyValue, Op
from unitctl.registry.leader import LeaderElection, Leadership


class CommitResult(Frozen):
    """What :meth:`ScheduleStore.commit` wrote: transactions and the ops they applied."""

    __slots__ = ("ops", "skipped", "txns")
    txns: int
    ops: list[Op]
    skipped: int

    def __init__(self, txns: int = 0, ops: list[Op] | None = None, skipped: int = 0) -> None:
        init(self, txns, [] if ops is None else ops, skipped)


class ScheduleStore:
    """Reads of the engine-owned keys, and the engine's guarded commit."""

    def __init__(self, kv: KV, keyspace: Keyspace, election: LeaderElection) -> None:
        self.kv = kv
        self.keyspace = keyspace
        self.keys: Keys = keyspace.keys
        self.election = election

    async def list_placements(self) -> dict[str, str]:
        return (await self.placements_with_revs())[0]

    async def placements_with_revs(self) -> tuple[dict[str, str], dict[str, int]]:
        """Every placement (unit -> machine) and each placement key's mod revision."""
        rng = await self.kv.get_prefix(self.keys.placements())
        good, _ = poison.decode_each(rng.kvs, lambda kv: (kv.mod_rev, self.keyspace.placement(kv)))
        return {name: m for _, (name, m) in good}, {name: rev for rev, (name, _) in good}

    async def list_schedules(self) -> dict[str, dict[str, ScheduleEntry]]:
        rng = await self.kv.get_prefix(self.keys.schedules())
        out: dict[str, dict[str, ScheduleEntry]] = {}
        for machine, entry in poison.decode_each(rng.kvs, self.keyspace.entry)[0]:
            out.setdefault(machine, {})[entry.name] = entry
        return out

    async def get_schedule(self, machine_id: str) -> tuple[dict[str, ScheduleEntry], int]:
        """Return this machine's schedule and the revision it was read at."""
        rng = await self.kv.get_prefix(self.keys.schedule(machine_id))
        good, _ = poison.decode_each(rng.kvs, self.keyspace.entry)
        return {entry.name: entry for _, entry in good}, rng.revision

    def watch_schedule(self, machine_id: str, start_rev: int) -> AsyncIterator[list[Event]]:
        """Watch only this machine's schedule prefix (one change wakes one agent)."""
        return self.kv.watch_prefix(self.keys.schedule(machine_id), start_rev)

    def apply_events(self, machine_id: str, entries: Mapping[str, ScheduleEntry],
                     events: Sequence[Event]) -> dict[str, ScheduleEntry]:
        """``entries`` (this machine's schedule) with ``events`` of its watch applied,
        in order, as a new dict (``entries`` is left as it was).

        A delete removes the entry; a put whose value does not decode removes it
        too (reported once, as :meth:`get_schedule` skips it); an event of
        another machine's key is ignored.
        """
        out = dict(entries)
        prefix = self.keys.schedule(machine_id)
        for ev in events:
            if not ev.key.startswith(prefix) or len(ev.key) == len(prefix):
                continue
            name = ev.key[len(prefix):]
            if ev.kind is EventKind.DELETE:
                out.pop(name, None)
                continue
            try:
                out[name] = self.keyspace.entry(KeyValue(ev.key, ev.value, 0, ev.mod_rev, 0))[1]
            except poison.DECODE_ERRORS as exc:
                poison.invalid(ev.key, ev.mod_rev, exc)
                out.pop(name, None)
        return out

    async def get_explanation(self, name: str) -> dict[str, str] | None:
        kv = await self.kv.get(self.keys.explanation(name))
        good = poison.decode_each([] if kv is None else [kv], self.keyspace.explanation)[0]
        return good[0][1] if good else None

    async def list_explanations(self) -> dict[str, dict[str, str]]:
        rng = await self.kv.get_prefix(self.keys.explanations())
        return dict(poison.decode_each(rng.kvs, self.keyspace.explanation)[0])

    async def commit(self, batches: Sequence[Sequence[Group]],
                     lead: Leadership) -> CommitResult:
        """Apply each batch of groups as one transaction, guarded by ``lead``.

        Each transaction holds only while we still lead and every group's own
        compares hold (the engine guards a unit's group by the revisions it
        read). When a batch fails, its groups are committed one by one: a group
        whose compares fail is skipped (it waits for the next round).
        Raises ConflictError when we no longer lead.

        Up to :data:`COMMIT_IN_FLIGHT` batches are in flight at once, but only
        batches that touch no key another of them writes (:func:`_windows`):
        their outcomes do not depend on their order, so the result is the one
        of committing them one after another, without waiting for each reply.
        """
        guard = self.election.guard(lead)
        ops: list[Op] = []
        txns, skipped = 0, 0
        for window in _windows(batches):
            landed = await blocking.gather(*(self._commit_batch(guard, b) for b in window))
            failed = [b for b, ok in zip(window, landed, strict=True) if not ok]
            for batch in (b for b, ok in zip(window, landed, strict=True) if ok):
                txns += 1
                ops.extend(o for g in batch for o in g[1])
            if failed and not await self.election.still_leader(lead):
                raise ConflictError("engine leadership lost")
            for group in (g for b in failed for g in b):
                if await self._commit_batch(guard, [group]):
                    txns += 1
                    ops.extend(group[1])
                else:
                    skipped += 1
        return CommitResult(txns, ops, skipped)

    async def _commit_batch(self, guard: list[Compare], batch: Sequence[Group]) -> bool:
        compares = [c for g in batch for c in g[0]]
        ops = [o for g in batch for o in g[1]]
        return await self.kv.txn([*guard, *compares], ops)


#: Commit transactions in flight at once (independent ones only: :func:`_windows`).
COMMIT_IN_FLIGHT = 8


def _windows(batches: Sequence[Sequence[Group]]) -> list[list[Sequence[Group]]]:
    """Consecutive batches, in order, in windows of at most :data:`COMMIT_IN_FLIGHT`
    where no batch compares or writes a key that another batch of its window
    writes (nor writes a key another one compares): the batches of a window
    commute. A prefix compare counts as every key under it; a batch with a
    prefix delete starts a window of its own."""
    windows: list[list[Sequence[Group]]] = []
    writes: set[str] = set()
    reads: set[str] = set()
    prefixes: list[str] = []
    alone = False
    for batch in batches:
        mine_w = {o.key for g in batch for o in g[1]}
        mine_r = {c.key for g in batch for c in g[0] if not c.prefix}
        mine_p = [c.key for g in batch for c in g[0] if c.prefix]
        wide = any(isinstance(o, Delete) and o.prefix for g in batch for o in g[1])
        clash = (wide or mine_w & (writes | reads) or mine_r & writes
                 or any(k.startswith(p) for k in mine_w for p in prefixes)
                 or any(k.startswith(p) for k in writes for p in mine_p))
        if not windows or clash or alone or len(windows[-1]) >= COMMIT_IN_FLIGHT:
            windows.append([])
            writes, reads, prefixes = set(), set(), []
        windows[-1].append(batch)
        writes |= mine_w
        reads |= mine_r
        prefixes += mine_p
        alone = wide
    return windows
