"""Failure records and move histories in etcd (the failure policy's keys).

Under the prefix::

    failures/<unit>/<machine>   agent-owned (the machine's agent), under a lease of
                                its own with the policy's AvoidFor as TTL: the unit
                                failed Failures times within Window there
                                (unitctl.failover.FailureRecord); etcd deletes it
                                when the machine is no longer to be avoided
    moves/<unit>                engine-owned, under a lease of its own (a day at
                                least): the unit's last moves off failing machines

Neither is under a machine's lease: a record outlives the machine's agent (a
machine that keeps failing a unit must stay avoided after it re-registers).
A value that does not decode is skipped (logged once by the caller), never
raised: a bad key in etcd never stops the cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from unitctl.errors import RegistryError
from unitctl.failover import FailureRecord, MoveRecord
from unitctl.registry import codec
from unitctl.registry.kv import KV, KeyValue
from unitctl.registry.registry import Registry

log = logging.getLogger("unitctl.registry")

#: The shortest life of a move history (its lease's TTL), in seconds.
MOVES_TTL = 86400


class FailureKeys:
    """The two prefixes, under one registry prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def failures(self, unit: str = "") -> str:
        return f"{self.prefix}failures/{unit + '/' if unit else ''}"

    def failure(self, unit: str, machine: str) -> str:
        return f"{self.prefix}failures/{unit}/{machine}"

    def moves(self, unit: str = "") -> str:
        return f"{self.prefix}moves/{unit}"

    def parse_failure(self, key: str) -> tuple[str, str] | None:
        """(unit, machine) of a ``failures/`` key, or None."""
        tail = key.removeprefix(self.failures())
        unit, _, machine = tail.rpartition("/")
        return (unit, machine) if key != tail and unit and machine else None

    def parse_moves(self, key: str) -> str | None:
        """The unit of a ``moves/`` key, or None."""
        tail = key.removeprefix(self.moves())
        return tail if key != tail and tail and "/" not in tail else None


def decode_failure_kv(keys: FailureKeys, kv: KeyValue) -> FailureRecord | None:
    """The record a ``failures/`` key holds, or None (not one, or undecodable: logged)."""
    ref = keys.parse_failure(kv.key)
    if ref is None:
        return None
    try:
        return codec.decode_failure(kv.key, ref[0], ref[1], kv.value)
    except RegistryError as exc:
        log.warning("skipping %s", exc)
        return None


def decode_moves_kv(keys: FailureKeys, kv: KeyValue) -> tuple[str, tuple[MoveRecord, ...]] | None:
    """(unit, history) of a ``moves/`` key, or None (not one, or undecodable: logged)."""
    unit = keys.parse_moves(kv.key)
    if unit is None:
        return None
    try:
        return unit, codec.decode_moves(kv.key, kv.value)
    except RegistryError as exc:
        log.warning("skipping %s", exc)
        return None


class FailureStore:
    """Reads and writes the failure policy's keys over the KV port."""

    def __init__(self, kv: KV, prefix: str) -> None:
        self.kv = kv
        self.keys = FailureKeys(prefix)

    async def record_failure(self, rec: FailureRecord, ttl: float) -> None:
        """Store ``rec`` under a fresh lease of ``ttl`` seconds (the agent's write)."""
        lease = await self.kv.grant_lease(max(1, int(ttl)))
        await self.kv.put(self.keys.failure(rec.unit, rec.machine), codec.encode_failure(rec),
                          lease)

    async def record_moves(self, unit: str, history: tuple[MoveRecord, ...],
                           ttl: float) -> None:
        """Store ``unit``'s move history under a fresh lease (the engine's write)."""
        lease = await self.kv.grant_lease(max(MOVES_TTL, int(ttl)))
        await self.kv.put(self.keys.moves(unit), codec.encode_moves(history), lease)

    async def failures_of(self, unit: str) -> dict[str, FailureRecord]:
        """machine -> record, for one unit."""
        rng = await self.kv.get_prefix(self.keys.failures(unit))
        found = (decode_failure_kv(self.keys, kv) for kv in rng.kvs)
        return {r.machine: r for r in found if r is not None and r.unit == unit}

    async def moves_of(self, unit: str) -> tuple[MoveRecord, ...]:
        kv = await self.kv.get(self.keys.moves(unit))
        got = decode_moves_kv(self.keys, kv) if kv is not None else None
        return got[1] if got else ()

    async def all_failures(self) -> dict[str, dict[str, FailureRecord]]:
        """unit -> machine -> record."""
        rng = await self.kv.get_prefix(self.keys.failures())
        out: dict[str, dict[str, FailureRecord]] = {}
        for kv in rng.kvs:
            if (rec := decode_failure_kv(self.keys, kv)) is not None:
                out.setdefault(rec.unit, {})[rec.machine] = rec
        return out

    async def all_moves(self) -> Mapping[str, tuple[MoveRecord, ...]]:
        rng = await self.kv.get_prefix(self.keys.moves())
        found = (decode_moves_kv(self.keys, kv) for kv in rng.kvs)
        return dict(f for f in found if f is not None)


def failure_store(registry: Registry) -> FailureStore:
    """The failure policy's store over ``registry``'s KV and prefix."""
    return FailureStore(registry.kv, registry.keys.prefix)
