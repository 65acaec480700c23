"""Leader election: the ``leader`` key, taken under the campaigner's lease.

The key holds the leader's machine id; its create revision is the proof of a
term (:class:`Leadership`). A term ends when the lease expires or the leader
resigns; writes made in a term are guarded by :meth:`LeaderElection.guard`.
"""

from __future__ import annotations

from unitctl.record import Frozen, init
from unitctl.registry.keys import Keys
from unitctl.registry.kv import KV, Compare, CompareField, Delete, Put, mod_is, value_is


class Leadership(Frozen):
    """Proof of leadership: the leader key's create revision under our lease."""

    __slots__ = ("create_rev", "lease", "machine_id")
    machine_id: str
    lease: int
    create_rev: int

    def __init__(self, machine_id: str, lease: int, create_rev: int) -> None:
        init(self, machine_id, lease, create_rev)


class LeaderElection:
    """Campaign for, check and give up the leader key."""

    def __init__(self, kv: KV, keys: Keys) -> None:
        self.kv = kv
        self.keys = keys

    async def campaign(self, machine_id: str, lease: int) -> Leadership | None:
        """Take the leader key if it is free; return proof of leadership or None."""
        k = self.keys.leader
        await self.kv.txn([mod_is(k, 0)], [Put(k, machine_id.encode(), lease)])
        kv = await self.kv.get(k)
        if kv is None or kv.value.decode() != machine_id or kv.lease != lease:
            return None
        return Leadership(machine_id, lease, kv.create_rev)

    async def leader(self) -> str | None:
        kv = await self.kv.get(self.keys.leader)
        return None if kv is None else kv.value.decode()

    async def still_leader(self, lead: Leadership) -> bool:
        kv = await self.kv.get(self.keys.leader)
        return kv is not None and kv.create_rev == lead.create_rev

    async def resign(self, lead: Leadership) -> None:
        k = self.keys.leader
        await self.kv.txn([Compare(k, CompareField.CREATE, "==", lead.create_rev)], [Delete(k)])

    def guard(self, lead: Leadership) -> list[Compare]:
        """Compares that hold only while ``lead`` is the current term."""
        return [Compare(self.keys.leader, CompareField.CREATE, "==", lead.create_rev),
                value_is(self.keys.leader, lead.machine_id.encode())]
