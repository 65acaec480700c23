"""Rolling updates in etcd: the rollout records and the bodies they keep.

Under the prefix::

    rollouts/<name>              the record (:mod:`unitctl.rolloutcodec`): written by
                                 the client (create, resume, undo) and by the engine
                                 leader (each step), always compare-and-swap
    rolloutbodies/<name>/<sha1>  the target and every previous body: a unit's body is
                                 collected with its last user, and a revert or an
                                 undo needs the previous one back

A step of the engine (:meth:`RolloutStore.step`) writes the record and the
batch's unit bodies in ONE transaction, guarded by the leader's term, the
record's revision and each unit's revision: a leader that dies mid-step
leaves either all of it or none, and the new leader carries on from the
stored record. The unit writes are the client's replace (``units/<unit>``
with the new hash, desired state kept, the body and its reference), so the
engine's rounds and the agents' unload/load do the rest, as for
``submit --replace``.

A record that does not decode is skipped (logged once), never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from unitctl import rolloutcodec
from unitctl.errors import ConflictError, RegistryError
from unitctl.model import UnitRecord, UnitState
from unitctl.registry import codec, poison
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.kv import KV, Compare, Delete, KeyValue, Op, Put, mod_is, prefix_empty
from unitctl.registry.leader import LeaderElection, Leadership
from unitctl.rollout import Observed, Rollout

log = logging.getLogger("unitctl.registry")

#: Up to this many instances, each one's keys are read; above, the prefixes.
PER_UNIT_READS = 8


@dataclass(frozen=True, slots=True)
class StoredRollout:
    """A rollout record and the mod revision it was read at."""

    rollout: Rollout
    mod_rev: int


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance as read for a step: its unit (and key revision), its placement
    and the state its placed machine reports."""

    record: UnitRecord | None
    mod_rev: int
    machine: str = ""
    state: UnitState | None = None

    def observed(self) -> Observed:
        st = self.state
        return Observed(self.record.hash if self.record else "", st.hash if st else "",
                        st.active if st else "", st.health if st else "")


class RolloutStore:
    """Reads and writes ``rollouts/`` and ``rolloutbodies/`` over the KV port."""

    def __init__(self, kv: KV, keyspace: Keyspace, election: LeaderElection) -> None:
        self.kv = kv
        self.keyspace = keyspace
        self.keys = keyspace.keys
        self.election = election

    def _decode(self, kv: KeyValue) -> StoredRollout | None:
        try:
            return StoredRollout(rolloutcodec.decode(kv.key, kv.value), kv.mod_rev)
        except RegistryError as exc:
            poison.report(poison.invalid(kv.key, kv.mod_rev, exc))
            return None

    async def get(self, name: str) -> StoredRollout | None:
        kv = await self.kv.get(self.keys.rollout(name))
        return None if kv is None else self._decode(kv)

    async def read_all(self) -> tuple[list[StoredRollout], int]:
        """Every record that decodes, by name, and the revision of the read."""
        rng = await self.kv.get_prefix(self.keys.rollouts())
        found = (self._decode(kv) for kv in rng.kvs if "/" not in
                 self.keys.tail(kv.key, self.keys.rollouts()))
        return sorted((s for s in found if s is not None), key=lambda s: s.rollout.name), \
            rng.revision

    async def bodies(self, name: str) -> dict[str, str]:
        """sha -> text of the bodies kept for rollout ``name``."""
        base = self.keys.rollout_bodies(name)
        rng = await self.kv.get_prefix(base)
        return {self.keys.tail(kv.key, base): kv.value.decode() for kv in rng.kvs}

    async def create(self, rollout: Rollout, bodies: Mapping[str, str], over: int) -> None:
        """Store a new rollout with its bodies, replacing the finished record read at
        revision ``over`` (0: none). ConflictError when that record changed."""
        k = self.keys.rollout(rollout.name)
        old = await self.bodies(rollout.name)
        ops: list[Op] = [Put(k, rolloutcodec.encode(rollout))]
        ops += [Put(self.keys.rollout_body(rollout.name, sha), text.encode())
                for sha, text in sorted(bodies.items())]
        ops += [Delete(self.keys.rollout_body(rollout.name, sha)) for sha in sorted(old)
                if sha not in bodies]
        if not await self.kv.txn([mod_is(k, over)], ops):
            raise ConflictError(f"rollout {rollout.name} changed concurrently; try again")

    async def update(self, stored: StoredRollout, new: Rollout) -> None:
        """Replace the record (resume, undo); ConflictError when it changed meanwhile."""
        k = self.keys.rollout(new.name)
        if not await self.kv.txn([mod_is(k, stored.mod_rev)],
                                 [Put(k, rolloutcodec.encode(new))]):
            raise ConflictError(f"rollout {new.name} changed concurrently; try again")

    async def instances(self, names: Iterable[str]) -> dict[str, Instance]:
        """Each instance's unit, placement and placed state (missing: unit None)."""
        wanted = list(names)
        if len(wanted) > PER_UNIT_READS:
            return await self._instances_by_prefix(wanted)
        found: dict[str, Instance] = {}
        for name in wanted:
            unit = await self.kv.get(self.keys.unit(name))
            placed = await self.kv.get(self.keys.placement(name))
            states = await self.kv.get_prefix(self.keys.unit_states(name))
            found[name] = self._instance(name, unit, placed, states.kvs)
        return found

    async def _instances_by_prefix(self, names: list[str]) -> dict[str, Instance]:
        units = {self.keys.tail(kv.key, self.keys.units()): kv
                 for kv in (await self.kv.get_prefix(self.keys.units())).kvs}
        placed = {self.keys.tail(kv.key, self.keys.placements()): kv
                  for kv in (await self.kv.get_prefix(self.keys.placements())).kvs}
        states: dict[str, list[KeyValue]] = {}
        for kv in (await self.kv.get_prefix(self.keys.states())).kvs:
            name = self.keys.tail(kv.key, self.keys.states()).rpartition("/")[0]
            states.setdefault(name, []).append(kv)
        return {n: self._instance(n, units.get(n), placed.get(n), states.get(n, []))
                for n in names}

    def _instance(self, name: str, unit: KeyValue | None, placed: KeyValue | None,
                  states: Sequence[KeyValue]) -> Instance:
        record, rev = None, 0
        if unit is not None:
            rev = unit.mod_rev
            try:
                record = self.keyspace.unit(unit)
            except poison.DECODE_ERRORS:
                record = None  # an invalid unit key reads as changed outside the rollout
        machine = placed.value.decode() if placed is not None else ""
        state = None
        for kv in states:
            try:
                st = self.keyspace.state(kv)
            except poison.DECODE_ERRORS:
                continue
            if st.name == name and st.machine_id == machine:
                state = st
        return Instance(record, rev, machine, state)

    async def step(self, lead: Leadership, stored: StoredRollout, new: Rollout,
                   writes: Mapping[str, tuple[Instance, str]]) -> bool:
        """Store ``new`` and write each instance's new body (instance -> (as read, sha)),
        all in one transaction guarded by the term, the record and the units.

        Returns False when a unit or the record changed meanwhile (read again);
        raises ConflictError when the term is over.
        """
        bodies = await self.bodies(new.name) if writes else {}
        compares: list[Compare] = [*self.election.guard(lead),
                                   mod_is(self.keys.rollout(new.name), stored.mod_rev)]
        ops: dict[str, Op] = {self.keys.rollout(new.name): Put(
            self.keys.rollout(new.name), rolloutcodec.encode(new))}
        dropped: set[str] = set()
        for name, (inst, sha) in sorted(writes.items()):
            if inst.record is None or sha not in bodies:
                raise RegistryError(f"rollout {new.name}: no body {sha[:7]} for {name}")
            compares.append(mod_is(self.keys.unit(name), inst.mod_rev))
            rec = UnitRecord(name, sha, inst.record.desired)
            ops[self.keys.unit(name)] = Put(self.keys.unit(name), codec.encode_unit(rec))
            ops[self.keys.body(sha)] = Put(self.keys.body(sha), bodies[sha].encode())
            ops[self.keys.bodyref(sha, name)] = Put(self.keys.bodyref(sha, name), b"")
            old = self.keys.bodyref(inst.record.hash, name)
            ops[old] = Delete(old)
            dropped.add(inst.record.hash)
        if await self.kv.txn(compares, list(ops.values())):
            for sha in sorted(dropped):  # collected as the client's replace does
                await self.kv.txn([prefix_empty(self.keys.bodyrefs(sha))],
                                  [Delete(self.keys.body(sha))])
            return True
        if not await self.election.still_leader(lead):
            raise ConflictError("leadership lost")
        return False
