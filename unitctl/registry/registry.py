"""The Registry: unitctl's domain operations over the KV port.

One implementation, run over :class:`~unitctl.registry.etcd.EtcdKV` in
production and over :class:`~unitctl.registry.memory.MemoryKV` in fast tests.
Every write that depends on what was read is a transaction conditioned on the
revisions read (compare-and-swap), so no update is lost and no unit is ever
placed on two machines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from unitctl.errors import ConflictError, NotFoundError, RegistryError, RegistryUnavailable
from unitctl.model import Machine, ScheduleEntry, TargetState, UnitRecord, UnitState
from unitctl.registry import codec
from unitctl.registry.keys import SCHEMA_VERSION, Keys, normalize_prefix
from unitctl.registry.kv import (
    KV,
    Compare,
    Delete,
    Event,
    Op,
    Put,
    Target,
    mod_is,
    prefix_empty,
    value_is,
)
from unitctl.registry.leases import KVLeases, Leases

#: etcd refuses transactions with more than 128 operations by default.
MAX_TXN_OPS = 120

Group = tuple[list[Compare], list[Op]]


@dataclass(frozen=True, slots=True)
class EngineView:
    """Everything the engine reads for one round, with the revisions it read."""

    revision: int
    units: Mapping[str, UnitRecord]
    unit_revs: Mapping[str, int]
    placements: Mapping[str, str]
    placement_revs: Mapping[str, int]
    schedules: Mapping[str, Mapping[str, ScheduleEntry]]
    machines: Mapping[str, Machine]
    explanations: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class TargetSchedule:
    """What the engine wants stored after a round."""

    placements: Mapping[str, str]
    schedules: Mapping[str, Mapping[str, ScheduleEntry]]
    explanations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What :meth:`Registry.commit` wrote: transactions and the ops they applied."""

    txns: int = 0
    ops: list[Op] = field(default_factory=list)
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class Leadership:
    """Proof of leadership: the leader key's create revision under our lease."""

    machine_id: str
    lease: int
    create_rev: int


class Registry:
    """Domain operations. All methods may raise RegistryUnavailable/RegistryError."""

    def __init__(self, kv: KV, prefix: str = "/unitctl/") -> None:
        self.kv = kv
        self.keys = Keys(normalize_prefix(prefix))
        #: The lease port (the agent's session uses it; nothing else touches the KV's leases).
        self.leases: Leases = KVLeases(kv)

    async def close(self) -> None:
        """Close the connection underneath; the registry is unusable afterwards."""
        await self.kv.close()

    # -- schema ----------------------------------------------------------
    async def ensure_schema(self) -> int:
        """Write the schema version if absent; refuse a store written by a newer schema."""
        k = self.keys.version
        got = await self.kv.get(k)
        if got is None:
            try:
                await self.kv.txn([mod_is(k, 0)], [Put(k, str(SCHEMA_VERSION).encode())])
            except RegistryUnavailable:
                raise
            except RegistryError:
                return SCHEMA_VERSION  # a read-only user on an empty registry
            got = await self.kv.get(k)
        try:
            version = int(got.value) if got else 0
        except ValueError as exc:
            raise RegistryError(f"corrupt schema version at {k}") from exc
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"the registry has schema {version}; this unitctl understands {SCHEMA_VERSION}")
        return version

    # -- units (client side) ----------------------------------------------
    async def get_unit(self, name: str) -> UnitRecord | None:
        kv = await self.kv.get(self.keys.unit(name))
        return None if kv is None else codec.decode_unit(kv.key, name, kv.value)

    async def list_units(self) -> list[UnitRecord]:
        base = self.keys.units()
        rng = await self.kv.get_prefix(base)
        return [codec.decode_unit(kv.key, self.keys.tail(kv.key, base), kv.value)
                for kv in rng.kvs]

    async def get_body(self, sha: str) -> str | None:
        kv = await self.kv.get(self.keys.body(sha))
        return None if kv is None else kv.value.decode()

    async def get_bodies(self) -> dict[str, str]:
        base = self.keys.bodies()
        rng = await self.kv.get_prefix(base)
        return {self.keys.tail(kv.key, base): kv.value.decode() for kv in rng.kvs}

    async def create_unit(self, rec: UnitRecord, body: str, replace: bool = False) -> bool:
        """Store a new unit; with ``replace``, overwrite an existing one's body.

        Returns True when something was written, False when a unit of that name
        already exists (and ``replace`` was not given, or the body is the same).
        The body and its reference are written in the same transaction.
        """
        k = self.keys.unit(rec.name)
        existing = await self.kv.get(k)
        if existing is not None:
            old = codec.decode_unit(k, rec.name, existing.value)
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
        created: list[bool] = []
        per_txn = MAX_TXN_OPS // 4
        for i in range(0, len(units), per_txn):
            chunk = units[i:i + per_txn]
            compares = [mod_is(self.keys.unit(r.name), 0) for r, _ in chunk]
            ops: list[Op] = []
            for r, _ in chunk:
                ops += [Put(self.keys.unit(r.name), codec.encode_unit(r)),
                        Put(self.keys.bodyref(r.hash, r.name), b"")]
            # etcd refuses a key twice in one transaction: one put per shared body
            bodies = {r.hash: b for r, b in chunk}
            ops += [Put(self.keys.body(h), b.encode()) for h, b in bodies.items()]
            if await self.kv.txn(compares, ops):
                created += [True] * len(chunk)
            else:  # some exist already: decide one by one
                created += [await self.create_unit(r, b) for r, b in chunk]
        return created

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

    async def set_desired(self, name: str, desired: TargetState) -> UnitRecord:
        """Set a unit's desired state (compare-and-swap on the unit key)."""
        k = self.keys.unit(name)
        for _ in range(20):
            kv = await self.kv.get(k)
            if kv is None:
                raise NotFoundError(f"unit {name} does not exist")
            rec = codec.decode_unit(k, name, kv.value)
            if rec.desired == desired:
                return rec
            new = UnitRecord(name, rec.hash, desired)
            if await self.kv.txn([mod_is(k, kv.mod_rev)], [Put(k, codec.encode_unit(new))]):
                return new
        raise ConflictError(f"unit {name} keeps changing; try again")

    async def destroy_unit(self, name: str) -> bool:
        """Delete a unit; return False if it did not exist. Its body goes with its last user."""
        k = self.keys.unit(name)
        kv = await self.kv.get(k)
        if kv is None:
            return False
        rec = codec.decode_unit(k, name, kv.value)
        ops: list[Op] = [Delete(k), Delete(self.keys.bodyref(rec.hash, name))]
        if not await self.kv.txn([mod_is(k, kv.mod_rev)], ops):
            raise ConflictError(f"unit {name} changed concurrently; try again")
        await self.collect_body(rec.hash)
        return True

    async def collect_body(self, sha: str) -> bool:
        """Delete a body no unit refers to any more; return True if deleted."""
        return await self.kv.txn([prefix_empty(self.keys.bodyrefs(sha))],
                                 [Delete(self.keys.body(sha))])

    # -- machines, states, explanations ---------------------------------
    async def register_machine(self, machine: Machine, lease: int) -> None:
        """Publish a machine under its lease.

        Raises ConflictError if another live lease holds the same machine id
        (two hosts with one /etc/machine-id).
        """
        k = self.keys.machine(machine.id)
        cur = await self.kv.get(k)
        if cur is not None and cur.lease not in (0, lease):
            raise ConflictError(f"machine id {machine.id} is already registered by a live agent")
        cmp = [mod_is(k, cur.mod_rev if cur else 0)]
        ok = await self.kv.txn(cmp, [Put(k, codec.encode_machine(machine), lease)])
        if not ok:
            raise ConflictError(f"machine id {machine.id} was registered concurrently")

    async def list_machines(self) -> list[Machine]:
        rng = await self.kv.get_prefix(self.keys.machines())
        return [codec.decode_machine(kv.key, kv.value) for kv in rng.kvs]

    async def put_state(self, state: UnitState, lease: int) -> None:
        k = self.keys.state(state.name, state.machine_id)
        await self.kv.put(k, codec.encode_state(state), lease)

    async def publish_states(self, machine_id: str, states: Mapping[str, UnitState | None],
                             lease: int) -> None:
        """Put (or, for None, delete) this machine's states, many per transaction."""
        ops: list[Op] = [Put(self.keys.state(n, machine_id), codec.encode_state(st), lease)
                         if st is not None else Delete(self.keys.state(n, machine_id))
                         for n, st in states.items()]
        for i in range(0, len(ops), MAX_TXN_OPS):
            await self.kv.txn([], ops[i:i + MAX_TXN_OPS])

    async def delete_state(self, name: str, machine_id: str) -> None:
        """Delete only this machine's state of the unit (fleet deleted every machine's)."""
        await self.kv.delete(self.keys.state(name, machine_id))

    async def list_states(self) -> list[UnitState]:
        return [state for _, state in await self.states_with_revs()]

    async def states_with_revs(self) -> list[tuple[int, UnitState]]:
        """Every machine's state of every unit, each with its key's mod revision."""
        base = self.keys.states()
        rng = await self.kv.get_prefix(base)
        out = []
        for kv in rng.kvs:
            name, _, machine = self.keys.tail(kv.key, base).rpartition("/")
            out.append((kv.mod_rev, codec.decode_state(kv.key, name, machine, kv.value)))
        return out

    async def list_placements(self) -> dict[str, str]:
        base = self.keys.placements()
        rng = await self.kv.get_prefix(base)
        return {self.keys.tail(kv.key, base): kv.value.decode() for kv in rng.kvs}

    async def list_schedules(self) -> dict[str, dict[str, ScheduleEntry]]:
        base = self.keys.schedules()
        rng = await self.kv.get_prefix(base)
        out: dict[str, dict[str, ScheduleEntry]] = {}
        for kv in rng.kvs:
            machine, _, name = self.keys.tail(kv.key, base).partition("/")
            out.setdefault(machine, {})[name] = codec.decode_entry(kv.key, name, kv.value)
        return out

    async def get_explanation(self, name: str) -> dict[str, str] | None:
        kv = await self.kv.get(self.keys.explanation(name))
        return None if kv is None else codec.decode_explanation(kv.key, kv.value)

    async def list_explanations(self) -> dict[str, dict[str, str]]:
        base = self.keys.explanations()
        rng = await self.kv.get_prefix(base)
        return {self.keys.tail(kv.key, base): codec.decode_explanation(kv.key, kv.value)
                for kv in rng.kvs}

    # -- agent side --------------------------------------------------------
    async def get_schedule(self, machine_id: str) -> tuple[dict[str, ScheduleEntry], int]:
        """Return this machine's schedule and the revision it was read at."""
        base = self.keys.schedule(machine_id)
        rng = await self.kv.get_prefix(base)
        entries = {}
        for kv in rng.kvs:
            name = self.keys.tail(kv.key, base)
            entries[name] = codec.decode_entry(kv.key, name, kv.value)
        return entries, rng.revision

    def watch_schedule(self, machine_id: str, start_rev: int) -> AsyncIterator[list[Event]]:
        """Watch only this machine's schedule prefix (one change wakes one agent)."""
        return self.kv.watch_prefix(self.keys.schedule(machine_id), start_rev)

    # -- engine side -----------------------------------------------------
    async def engine_view(self) -> EngineView:
        """Read everything the engine needs; the units read carry their revisions."""
        units, unit_revs, first_rev = await self.units_with_revs()
        base = self.keys.placements()
        placement_kvs = await self.kv.get_prefix(base)
        placements = {self.keys.tail(kv.key, base): kv.value.decode()
                      for kv in placement_kvs.kvs}
        placement_revs = {self.keys.tail(kv.key, base): kv.mod_rev for kv in placement_kvs.kvs}
        machines = {m.id: m for m in await self.list_machines()}
        # The view's revision is that of its FIRST read: a watch from revision+1
        # then replays anything that changed while the later reads ran.
        return EngineView(first_rev, units, unit_revs, placements, placement_revs,
                          await self.list_schedules(), machines, await self.list_explanations())

    async def units_with_revs(self) -> tuple[dict[str, UnitRecord], dict[str, int], int]:
        """Every unit, each key's mod revision, and the revision of the read."""
        base = self.keys.units()
        rng = await self.kv.get_prefix(base)
        units, revs = {}, {}
        for kv in rng.kvs:
            name = self.keys.tail(kv.key, base)
            units[name] = codec.decode_unit(kv.key, name, kv.value)
            revs[name] = kv.mod_rev
        return units, revs, rng.revision

    async def commit(self, view: EngineView, target: TargetSchedule,
                     lead: Leadership) -> CommitResult:
        """Write the difference between ``view`` and ``target``.

        Each transaction is conditioned on: we still lead, and every unit it
        touches (unit key and placement key) is unchanged since the view was
        read. When a batch fails because one unit changed, the others are
        committed one by one; the changed one waits for the next round.
        Raises ConflictError when we no longer lead.
        """
        guard = [Compare(self.keys.leader, Target.CREATE, "==", lead.create_rev),
                 value_is(self.keys.leader, lead.machine_id.encode())]
        result = CommitResult()
        txns, skipped = 0, 0
        for batch in pack(plan_groups(self.keys, view, target)):
            if await self._commit_batch(guard, batch):
                txns += 1
                result.ops.extend(o for g in batch for o in g[1])
                continue
            if not await self.still_leader(lead):
                raise ConflictError("engine leadership lost")
            for group in batch:
                if await self._commit_batch(guard, [group]):
                    txns += 1
                    result.ops.extend(group[1])
                else:
                    skipped += 1
        return CommitResult(txns, result.ops, skipped)

    async def _commit_batch(self, guard: list[Compare], batch: list[Group]) -> bool:
        compares = [c for g in batch for c in g[0]]
        ops = [o for g in batch for o in g[1]]
        return await self.kv.txn([*guard, *compares], ops)

    # -- leader election -------------------------------------------------
    async def campaign(self, machine_id: str, lease: int) -> Leadership | None:
        """Take the leader key if it is free; return proof of leadership or None."""
        k = self.keys.leader
        await self.kv.txn([mod_is(k, 0)], [Put(k, machine_id.encode(), lease)])
        kv = await self.kv.get(k)
        if kv is None or kv.value.decode() != machine_id or kv.lease != lease:
            return None
        return Leadership(machine_id, lease, kv.create_rev)

    async def revision(self) -> int:
        """The store's current revision, read under our own prefix (RBAC-friendly)."""
        return (await self.kv.get_prefix(self.keys.version)).revision

    async def leader(self) -> str | None:
        kv = await self.kv.get(self.keys.leader)
        return None if kv is None else kv.value.decode()

    async def still_leader(self, lead: Leadership) -> bool:
        kv = await self.kv.get(self.keys.leader)
        return kv is not None and kv.create_rev == lead.create_rev

    async def resign(self, lead: Leadership) -> None:
        k = self.keys.leader
        await self.kv.txn([Compare(k, Target.CREATE, "==", lead.create_rev)], [Delete(k)])

    def watch(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        """Watch any prefix built with :attr:`keys`."""
        return self.kv.watch_prefix(prefix, start_rev)


def _unit_ops(keys: Keys, view: EngineView, target: TargetSchedule, name: str,
              scheduled_on: Mapping[str, list[str]]) -> Group:
    """The compares and ops that bring one non-global unit's placement to target.

    ``scheduled_on`` maps a unit to the machines whose schedule holds it in
    ``view`` (an index: scanning every machine per unit is O(units x machines)).
    """
    ops: list[Op] = []
    old_m, new_m = view.placements.get(name), target.placements.get(name)
    if old_m != new_m:
        ops.append(Put(keys.placement(name), new_m.encode()) if new_m
                   else Delete(keys.placement(name)))
    for m in scheduled_on.get(name, ()):
        if m != new_m or name not in target.schedules.get(m, {}):
            ops.append(Delete(keys.scheduled(m, name)))
    if new_m:
        want = target.schedules.get(new_m, {}).get(name)
        have = view.schedules.get(new_m, {}).get(name)
        if want is not None and want != have:
            ops.append(Put(keys.scheduled(new_m, name), codec.encode_entry(want)))
    if not ops:
        return [], []
    compares = [mod_is(keys.placement(name), view.placement_revs.get(name, 0))]
    if name in view.unit_revs:
        compares.append(mod_is(keys.unit(name), view.unit_revs[name]))
    return compares, ops


def _free_ops(keys: Keys, view: EngineView, target: TargetSchedule,
              placed: set[str]) -> list[Op]:
    """Schedule ops for units without a placement key (global units, leftovers)."""
    ops: list[Op] = []
    for m in sorted(set(view.schedules) | set(target.schedules)):
        have, want = view.schedules.get(m, {}), target.schedules.get(m, {})
        for name in sorted(set(have) | set(want)):
            if name in placed:
                continue
            if name not in want:
                ops.append(Delete(keys.scheduled(m, name)))
            elif have.get(name) != want[name]:
                ops.append(Put(keys.scheduled(m, name), codec.encode_entry(want[name])))
    return ops


def _explain_ops(keys: Keys, view: EngineView, target: TargetSchedule) -> list[Op]:
    ops: list[Op] = []
    for name in sorted(set(view.explanations) | set(target.explanations)):
        want = target.explanations.get(name)
        if want is None:
            ops.append(Delete(keys.explanation(name)))
        elif dict(view.explanations.get(name, {})) != dict(want):
            ops.append(Put(keys.explanation(name), codec.encode_explanation(want)))
    return ops


def plan_groups(keys: Keys, view: EngineView, target: TargetSchedule) -> list[Group]:
    """The view→target difference as groups of (compares, ops).

    All ops of one non-global unit form one group, guarded by that unit's
    revisions, so a unit is never in two schedules at once. Other ops
    (global units, explanations) come in unguarded groups of one op.
    """
    placed = set(view.placements) | set(target.placements)
    scheduled_on: dict[str, list[str]] = {}
    for m, entries in view.schedules.items():
        for name in entries:
            scheduled_on.setdefault(name, []).append(m)
    groups: list[Group] = []
    for name in sorted(placed):
        c, o = _unit_ops(keys, view, target, name, scheduled_on)
        if o:
            groups.append((c, o))
    free = _free_ops(keys, view, target, placed) + _explain_ops(keys, view, target)
    groups.extend(([], [op]) for op in free)
    return groups


def pack(groups: list[Group], limit: int = MAX_TXN_OPS) -> list[list[Group]]:
    """Pack groups into transactions of at most ``limit`` compares plus ops."""
    batches: list[list[Group]] = []
    cur: list[Group] = []
    size = 0
    for g in groups:
        n = len(g[0]) + len(g[1])
        if cur and size + n > limit:
            batches.append(cur)
            cur, size = [], 0
        cur.append(g)
        size += n
    if cur:
        batches.append(cur)
    return batches
