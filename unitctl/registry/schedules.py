"""Schedules, placements and explanations: the engine-owned part of the registry.

``placements/<unit>`` names the machine of a non-global unit,
``schedule/<machine>/<unit>`` is what one agent must run (the only prefix an
agent watches) and ``explain/<unit>`` says why a unit could not be placed.
The engine writes them with :meth:`ScheduleStore.commit`: transactions of
guarded groups, each also conditioned on the engine still leading.
Every read skips (and reports once) a key whose value does not decode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from unitctl.errors import ConflictError
from unitctl.model import ScheduleEntry
from unitctl.registry import poison
from unitctl.registry.keys import Keys
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.kv import KV, Compare, Event, Group, Op
from unitctl.registry.leader import LeaderElection, Leadership


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What :meth:`ScheduleStore.commit` wrote: transactions and the ops they applied."""

    txns: int = 0
    ops: list[Op] = field(default_factory=list)
    skipped: int = 0


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
        """
        guard = self.election.guard(lead)
        ops: list[Op] = []
        txns, skipped = 0, 0
        for batch in batches:
            if await self._commit_batch(guard, batch):
                txns += 1
                ops.extend(o for g in batch for o in g[1])
                continue
            if not await self.election.still_leader(lead):
                raise ConflictError("engine leadership lost")
            for group in batch:
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
