"""Volume records: where each volume lives (:mod:`unitctl.volumes`).

* ``volumes/<name>``: written by the agent that made the volume's directory,
  **not under a lease** (the record outlives the machine: the data is still
  there when it comes back), created once (put-if-absent: a record is never
  overwritten by another machine), removed only by ``unitctl volume rm``;
  **taken over** by another machine only for a unit that moves without its
  volume (``MoveWithoutVolume=yes``, :meth:`VolumeStore.take_over`): one
  transaction that holds only while the record is the one read (its mod
  revision) and the machine it names is not registered (no ``machines/<id>``
  key), so two machines never both own it.
  The value is JSON ``{"machine": ..., "path": ..., "size": ..., "unit": ...}``
  for a local volume, ``{"store": ..., "path": ..., ...}`` for a shared one.

A value that does not decode is skipped and reported once (:mod:`.poison`);
it never stops a reader.
"""

from __future__ import annotations

from collections.abc import Iterable

from unitctl.errors import UsageError
from unitctl.registry import poison
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.kv import KV, KeyValue, Put, mod_is
from unitctl.volumes import VolumeRecord, valid_name


class VolumeStore:
    """``volumes/``: created by the agents, read by the engine and ``unitctl volume``."""

    def __init__(self, kv: KV, keyspace: Keyspace) -> None:
        self.kv = kv
        self.prefix = f"{keyspace.keys.prefix}volumes/"
        self.keys = keyspace.keys

    def key(self, name: str) -> str:
        if not valid_name(name):
            raise UsageError(f"bad volume name {name!r}")
        return f"{self.prefix}{name}"

    def name_of(self, key: str) -> str | None:
        """The volume name of a ``volumes/`` key, None for any other key."""
        if not key.startswith(self.prefix):
            return None
        name = key[len(self.prefix):]
        return name if valid_name(name) else None

    async def create(self, record: VolumeRecord) -> bool:
        """Store ``record`` unless the volume has one already; True when stored."""
        key = self.key(record.name)
        return await self.kv.txn([mod_is(key, 0)], [Put(key, record.encode())])

    async def get(self, name: str) -> VolumeRecord | None:
        found = await self.get_with_revision(name)
        return None if found is None else found[0]

    async def get_with_revision(self, name: str) -> tuple[VolumeRecord, int] | None:
        """The record of ``name`` and its mod revision, or None."""
        kv = await self.kv.get(self.key(name))
        return None if kv is None else (VolumeRecord.decode(name, kv.value), kv.mod_rev)

    async def take_over(self, record: VolumeRecord, revision: int, old_machine: str) -> bool:
        """Replace the record at mod ``revision``, which names ``old_machine``, by
        ``record``, if it is still that one and ``old_machine`` is not registered;
        True when replaced."""
        key = self.key(record.name)
        return await self.kv.txn([mod_is(key, revision), mod_is(self.keys.machine(old_machine), 0)],
                                 [Put(key, record.encode())])

    async def remove(self, name: str) -> bool:
        """Remove the record of ``name``; True when there was one."""
        return await self.kv.delete(self.key(name)) > 0

    async def all(self) -> dict[str, VolumeRecord]:
        return self.records((await self.kv.get_prefix(self.prefix)).kvs)

    def records(self, kvs: Iterable[KeyValue]) -> dict[str, VolumeRecord]:
        """The stored records among ``kvs`` that decode, by volume name."""
        found = poison.decode_each(kvs, self._decode)[0]
        return {r.name: r for r in sorted(found, key=lambda r: r.name)}

    def _decode(self, kv: KeyValue) -> VolumeRecord:
        name = self.name_of(kv.key)
        if name is None:
            raise ValueError(f"bad volume key {kv.key!r}")
        return VolumeRecord.decode(name, kv.value)
