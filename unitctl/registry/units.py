"""Units and their bodies: the client-owned part of the registry.

``units/<unit>`` holds a unit's body hash and desired state; ``bodies/<sha>``
the unit text, shared by every unit with the same text; ``bodyrefs/<sha>/<unit>``
one reference per user, so a body is collected (deleted) in the same breath
as its last user goes. Every write that depends on a read is a transaction
conditioned on the mod revision read: no update is lost.

Bounds: bodies are read by hash, up to ``MAX_TXN_OPS`` per round trip (one
transaction of range ops, ``KV.get_many``, which the gRPC adapter splits under
its receive limit), never with one prefix read of every body; and
:meth:`UnitStore.create_units` splits its transactions under etcd's request
limit (:data:`~unitctl.registry.kv.MAX_TXN_BYTES`, ``MAX_TXN_OPS``).

Poison keys: readers of the prefix skip a unit key that does not decode
(:mod:`.poison`); :meth:`UnitStore.get_unit` reads it as an *inactive* record
with the hash it names (or ""), so ``destroy`` can remove it, while every
other write re-reads the key strictly and refuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from unitctl.errors import ConflictError, NotFoundError
from unitctl.model import DesiredState, UnitRecord
from unitctl.record import Frozen, init
from unitctl.registry import codec, poison
from unitctl.registry.chunks import cas_chunks, destroy_chunks
from unitctl.registry.keys import Keys
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.kv import (
    KV,
    MAX_TXN_BYTES,
    MAX_TXN_OPS,
    Compare,
    Delete,
    KeyValue,
    Op,
    Put,
    Txn,
    mod_is,
    prefix_empty,
    request_bytes,
    value_is,
)
from unitctl.registry.poison import InvalidKey

#: Above this many unit keys, one prefix read (paged) instead of one read each.
BATCH_GETS = 8


class UnitsRead(Frozen):
    """The units prefix read: the units that decode, their revisions, the read
    revision, and the keys that do not decode (unit name -> why)."""

    __slots__ = ("invalid", "revision", "revs", "units")
    units: dict[str, UnitRecord]
    revs: dict[str, int]
    revision: int
    invalid: dict[str, str]

    def __init__(self, units: dict[str, UnitRecord], revs: dict[str, int], revision: int,
                 invalid: dict[str, str] | None = None) -> None:
        init(self, units, revs, revision, {} if invalid is None else invalid)


class UnitStore:
    """Units, bodies and body references over the KV port."""

    def __init__(self, kv: KV, keyspace: Keyspace) -> None:
        self.kv = kv
        self.keyspace = keyspace
        self.keys: Keys = keyspace.keys

    async def get_unit(self, name: str) -> UnitRecord | None:
        """The unit's record; an undecodable key reads as inactive (see the module doc)."""
        kv = await self.kv.get(self.keys.unit(name))
        return None if kv is None else self._lenient(name, kv)

    def _lenient(self, name: str, kv: KeyValue) -> UnitRecord:
        try:
            return self.keyspace.unit(kv)
        except poison.DECODE_ERRORS as exc:
            poison.invalid(kv.key, kv.mod_rev, exc)
            return UnitRecord(name, codec.unit_hash_or_empty(kv.value), DesiredState.INACTIVE)

    async def list_units(self) -> list[UnitRecord]:
        return list((await self.read_units()).units.values())

    async def units_with_revs(self) -> tuple[dict[str, UnitRecord], dict[str, int], int]:
        """Every unit, each key's mod revision, and the revision of the read."""
        read = await self.read_units()
        return read.units, read.revs, read.revision

    async def read_units(self) -> UnitsRead:
        """Every unit that decodes, and the unit keys that do not (skipped, reported)."""
        rng = await self.kv.get_prefix(self.keys.units())
        good, bad = poison.decode_each(rng.kvs, lambda kv: (kv.mod_rev, self.keyspace.unit(kv)))
        return UnitsRead({rec.name: rec for _, rec in good},
                         {rec.name: rev for rev, rec in good}, rng.revision,
                         {self._name(b): b.reason for b in bad})

    def _name(self, bad: InvalidKey) -> str:
        return self.keys.tail(bad.key, self.keys.units())

    async def get_body(self, sha: str) -> str | None:
        kv = await self.kv.get(self.keys.body(sha))
        return None if kv is None else kv.value.decode()

    async def get_bodies(self) -> dict[str, str]:
        """Every stored body (paged; prefer :meth:`get_bodies_by_hash`)."""
        rng = await self.kv.get_prefix(self.keys.bodies())
        return dict(poison.decode_each(rng.kvs, self.keyspace.body)[0])

    async def get_bodies_by_hash(self, shas: Iterable[str]) -> dict[str, str]:
        """The bodies of ``shas`` that exist (and decode): ``MAX_TXN_OPS`` per
        round trip (:meth:`KV.get_many`, which bounds each reply); one ``sha``
        is a plain get."""
        wanted = list(dict.fromkeys(shas))
        if len(wanted) == 1:
            text = await self._body_or_none(wanted[0])
            return {} if text is None else {wanted[0]: text}
        found: dict[str, str] = {}
        for i in range(0, len(wanted), MAX_TXN_OPS):
            got = await self.kv.get_many([self.keys.body(sha)
                                          for sha in wanted[i:i + MAX_TXN_OPS]])
            texts, _ = poison.decode_each([kv for kv in got if kv is not None],
                                          self.keyspace.body)
            found.update(texts)
        return found

    async def _body_or_none(self, sha: str) -> str | None:
        kv = await self.kv.get(self.keys.body(sha))
        if kv is None:
            return None
        texts, _ = poison.decode_each([kv], self.keyspace.body)
        return texts[0][1] if texts else None

    async def create_unit(self, rec: UnitRecord, body: str, replace: bool = False) -> bool:
        """Store a new unit; with ``replace``, overwrite an existing one's body.

        Returns True when something was written, False when a unit of that name
        already exists (and ``replace`` was not given, or the body is the same).
        The body and its reference are written in the same transaction.
        """
        k = self.keys.unit(rec.name)
        existing = await self.kv.get(k)
        if existing is not None:
            old = self.keyspace.unit(existing)
            if not replace or old.hash == rec.hash:
                return False
            return await self._replace_body(rec, body, old, existing.mod_rev)
        ops: list[Op] = [Put(k, codec.encode_unit(rec)), *self._body_ops(rec, body)]
        if not await self.kv.txn([mod_is(k, 0)], ops):
            raise ConflictError(f"unit {rec.name} was created concurrently; try again")
        return True

    async def create_units(self, units: list[tuple[UnitRecord, str]]) -> list[bool]:
        """Create many new units, a few dozen per transaction (``fleetctl start
        svc@{1..1000}`` in a handful of round trips). Same result per unit as
        :meth:`create_unit` without ``replace``: False where the name exists.
        """
        chunks = list(self._create_chunks(units))
        txns: list[Txn] = []
        for chunk in chunks:
            ops = [op for r, b in chunk for op in self._create_ops(r, b)]
            # etcd refuses a key twice in one transaction: one put per shared body
            txns.append(([mod_is(self.keys.unit(r.name), 0) for r, _ in chunk],
                         list({op.key: op for op in ops}.values())))
        created: list[bool] = []
        for chunk, ok in zip(chunks, await self.kv.txn_many(txns), strict=True):
            if ok:
                created += [True] * len(chunk)
            else:  # some exist already: decide one by one
                created += [await self.create_unit(r, b) for r, b in chunk]
        return created

    def _create_ops(self, rec: UnitRecord, body: str) -> list[Op]:
        return [Put(self.keys.unit(rec.name), codec.encode_unit(rec)), *self._body_ops(rec, body)]

    def _create_chunks(self, units: list[tuple[UnitRecord, str]],
                       ) -> Iterator[list[tuple[UnitRecord, str]]]:
        """Consecutive units whose transaction stays under etcd's op and byte limits
        (a body shared in a chunk is counted once, as it is put once)."""
        chunk: list[tuple[UnitRecord, str]] = []
        ops = size = 0
        bodies: set[str] = set()
        for rec, body in units:
            cmp = mod_is(self.keys.unit(rec.name), 0)
            mine = self._create_ops(rec, body)
            if rec.hash in bodies:
                mine = mine[:1] + mine[2:]
            n, b = 1 + len(mine), request_bytes([cmp], mine)
            if chunk and (ops + n > MAX_TXN_OPS or size + b > MAX_TXN_BYTES):
                yield chunk
                chunk, ops, size, bodies = [], 0, 0, set()
                mine = self._create_ops(rec, body)
                n, b = 1 + len(mine), request_bytes([cmp], mine)
            chunk.append((rec, body))
            bodies.add(rec.hash)
            ops, size = ops + n, size + b
        if chunk:
            yield chunk

    def _body_ops(self, rec: UnitRecord, body: str) -> list[Op]:
        return [Put(self.keys.body(rec.hash), body.encode()),
                Put(self.keys.bodyref(rec.hash, rec.name), b"")]

    async def _replace_body(self, rec: UnitRecord, body: str, old: UnitRecord,
                            mod_rev: int) -> bool:
        k = self.keys.unit(rec.name)
        new = UnitRecord(rec.name, rec.hash, max(rec.desired, old.desired, key=lambda s: s.rank))
        ops: list[Op] = [Put(k, codec.encode_unit(new)), *self._body_ops(rec, body),
                         Delete(self.keys.bodyref(old.hash, rec.name))]
        if not await self.kv.txn([mod_is(k, mod_rev)], ops):
            raise ConflictError(f"unit {rec.name} changed concurrently; try again")
        await self.collect_body(old.hash)
        return True

    async def set_desired(self, name: str, desired: DesiredState) -> UnitRecord:
        """Set a unit's desired state (compare-and-swap on the unit key)."""
        k = self.keys.unit(name)
        for _ in range(20):
            kv = await self.kv.get(k)
            if kv is None:
                raise NotFoundError(f"unit {name} does not exist")
            rec = self.keyspace.unit(kv)
            if rec.desired == desired:
                return rec
            new = UnitRecord(name, rec.hash, desired)
            if await self.kv.txn([mod_is(k, kv.mod_rev)], [Put(k, codec.encode_unit(new))]):
                return new
        raise ConflictError(f"unit {name} keeps changing; try again")

    async def set_desired_many(self, names: Sequence[str], desired: DesiredState,
                               known: Mapping[str, UnitRecord] | None = None,
                               ) -> list[UnitRecord]:
        """Set the desired state of many units in a few transactions: a
        compare-and-swap per unit, packed under etcd's op and byte limits.

        The compare is on the stored value being the record the caller ``known``
        has read (no read at all: a ``start`` of one unit saves a round trip),
        or, for names it does not know, on the unit's mod revision, read here
        (one prefix read for many names). A known record that already has
        ``desired`` is read again, not trusted: a stale one (``restart``'s own
        stop, another client's change) would otherwise skip a needed write.
        A transaction whose compare fails (a unit changed meanwhile) is redone
        unit by unit with :meth:`set_desired`: no change is lost.

        Raises:
            NotFoundError: a unit does not exist (when read here: checked before
                anything is written).
        """
        wanted = list(dict.fromkeys(names))
        trusted = {n: known[n] for n in wanted
                   if known is not None and n in known and known[n].desired != desired}
        recs, revs = await self._records_with_revs([n for n in wanted if n not in trusted])
        missing = next((n for n in wanted if n not in recs and n not in trusted), None)
        if missing is not None:
            raise NotFoundError(f"unit {missing} does not exist")
        guard = {n: mod_is(self.keys.unit(n), rev) for n, rev in revs.items()}
        guard.update((n, value_is(self.keys.unit(n), codec.encode_unit(rec)))
                     for n, rec in trusted.items())
        recs.update(trusted)
        result = dict(recs)
        result.update(await self._swap_desired(
            {n: self._desired_cas(recs[n], guard[n], desired)
             for n in wanted if recs[n].desired != desired}, recs, desired))
        return [result[n] for n in wanted]

    async def _swap_desired(self, pairs: dict[str, tuple[Compare, Op]],
                            recs: Mapping[str, UnitRecord], desired: DesiredState,
                            ) -> dict[str, UnitRecord]:
        """Apply the compare-and-swap ``pairs`` packed into transactions (several
        in flight); a chunk whose compare failed is redone unit by unit."""
        chunks = list(cas_chunks(list(pairs), pairs.__getitem__))
        landed = await self.kv.txn_many([([pairs[n][0] for n in chunk],
                                          [pairs[n][1] for n in chunk]) for chunk in chunks])
        out: dict[str, UnitRecord] = {}
        for chunk, ok in zip(chunks, landed, strict=True):
            for n in chunk:
                out[n] = UnitRecord(n, recs[n].hash, desired) if ok \
                    else await self.set_desired(n, desired)
        return out

    async def _records_with_revs(self, names: Sequence[str],
                                 ) -> tuple[dict[str, UnitRecord], dict[str, int]]:
        """The records (and key revisions) of ``names`` that exist and decode."""
        if len(names) > BATCH_GETS:
            units, revs, _ = await self.units_with_revs()
            return ({n: units[n] for n in names if n in units},
                    {n: revs[n] for n in names if n in units})
        recs: dict[str, UnitRecord] = {}
        revs = {}
        for n in names:
            kv = await self.kv.get(self.keys.unit(n))
            if kv is not None:
                recs[n], revs[n] = self.keyspace.unit(kv), kv.mod_rev
        return recs, revs

    def _desired_cas(self, rec: UnitRecord, guard: Compare,
                     desired: DesiredState) -> tuple[Compare, Op]:
        k = self.keys.unit(rec.name)
        return guard, Put(k, codec.encode_unit(UnitRecord(rec.name, rec.hash, desired)))

    async def destroy_unit(self, name: str) -> bool:
        """Delete a unit; return False if it did not exist. Its body goes with its last user."""
        sha = await self._destroy_one(name)
        if sha:
            await self.collect_body(sha)
        return sha is not None

    async def _destroy_one(self, name: str) -> str | None:
        """Delete a unit and its body reference; return its body hash ("" without
        one), or None if it did not exist. Raises ConflictError if it changed
        between the read and the delete."""
        k = self.keys.unit(name)
        kv = await self.kv.get(k)
        if kv is None:
            return None
        rec = self._lenient(name, kv)  # an invalid key can be destroyed too
        if not await self.kv.txn([mod_is(k, kv.mod_rev)], self._destroy_ops(name, rec)):
            raise ConflictError(f"unit {name} changed concurrently; try again")
        return rec.hash

    async def destroy_units(self, names: Sequence[str]) -> list[str]:
        """Delete many units in a few transactions; return those that existed.

        Each unit's deletes (its key and its body reference) are guarded by the
        mod revision read here, packed up to etcd's op limit per transaction; a
        transaction whose compare fails (a unit changed meanwhile) is redone unit
        by unit with :meth:`destroy_unit` (which raises ConflictError if it
        changed again). Bodies no unit refers to any more go afterwards, once
        per body. A key that does not decode is destroyed too.
        """
        wanted = list(dict.fromkeys(names))
        found = await self._raw_units(wanted)
        groups = [(n, self._lenient(n, found[n])) for n in wanted if n in found]
        chunks = list(destroy_chunks(groups))
        landed = await self.kv.txn_many(
            [([mod_is(self.keys.unit(n), found[n].mod_rev) for n, _ in chunk],
              [op for n, rec in chunk for op in self._destroy_ops(n, rec)]) for chunk in chunks])
        done: list[str] = []
        for chunk, ok in zip(chunks, landed, strict=True):
            if ok:
                done += [n for n, _ in chunk]
                continue
            done += [n for n, _ in chunk if await self._destroy_one(n) is not None]
        hashes = {rec.hash for n, rec in groups if rec.hash}
        for sha in sorted(hashes):
            await self.collect_body(sha)
        return [n for n in wanted if n in set(done)]

    async def _raw_units(self, names: Sequence[str]) -> dict[str, KeyValue]:
        """The stored unit keys of ``names`` (decoded or not), by name."""
        if len(names) > BATCH_GETS:
            rng = await self.kv.get_prefix(self.keys.units())
            by_name = {self.keys.tail(kv.key, self.keys.units()): kv for kv in rng.kvs}
            return {n: by_name[n] for n in names if n in by_name}
        got = {n: await self.kv.get(self.keys.unit(n)) for n in names}
        return {n: kv for n, kv in got.items() if kv is not None}

    def _destroy_ops(self, name: str, rec: UnitRecord) -> list[Op]:
        ops: list[Op] = [Delete(self.keys.unit(name))]
        if rec.hash:
            ops.append(Delete(self.keys.bodyref(rec.hash, name)))
        return ops

    async def collect_body(self, sha: str) -> bool:
        """Delete a body no unit refers to any more; return True if deleted."""
        return await self.kv.txn([prefix_empty(self.keys.bodyrefs(sha))],
                                 [Delete(self.keys.body(sha))])
