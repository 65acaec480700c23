"""The Registry: unitctl's domain operations over the KV port, one facade.

One implementation, run over :class:`~unitctl.registry.etcd.EtcdKV` in
production and over :class:`~unitctl.registry.memory.MemoryKV` in fast tests.
Every write that depends on what was read is a transaction conditioned on the
revisions read (compare-and-swap), so no update is lost and no unit is ever
placed on two machines.

The work is split by entity, as fleet's registry/ is: :mod:`.units` (units
and bodies), :mod:`.machines` (machines and states), :mod:`.schedules`
(placements, schedules, explanations and the engine's guarded commit),
:mod:`.leader` (election), :mod:`.schema` and :mod:`.requests` (the agent
channel). This class composes them and delegates; callers need nothing but
it (and never its ``kv``).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from unitctl.model import DesiredState, Machine, ScheduleEntry, UnitRecord, UnitState
from unitctl.registry import poison, schema
from unitctl.registry.keys import Keys, normalize_prefix
from unitctl.registry.keyspace import Keyspace, Record
from unitctl.registry.kv import KV, MAX_TXN_OPS, Event, Group
from unitctl.registry.leader import LeaderElection, Leadership
from unitctl.registry.leases import KVLeases, Leases
from unitctl.registry.machines import MachineStore
from unitctl.registry.poison import InvalidKey
from unitctl.registry.schedules import CommitResult, ScheduleStore
from unitctl.registry.units import UnitsRead, UnitStore

if TYPE_CHECKING:  # the stores below are imported when first used (start-up cost)
    from unitctl.registry.audit import AuditLog
    from unitctl.registry.bundles import BundleStore
    from unitctl.registry.dynmeta import MetadataStore
    from unitctl.registry.gatewayblock import BlockingWatch
    from unitctl.registry.requests import RequestStore
    from unitctl.registry.rollouts import RolloutStore
    from unitctl.registry.services import ServiceChanges, ServiceStore
    from unitctl.registry.templates import TemplateStore
    from unitctl.registry.tokens import TokenStore
    from unitctl.registry.volumes import VolumeStore

__all__ = ["CommitResult", "InvalidKey", "Leadership", "Registry", "UnitsRead"]


class Registry:
    """Domain operations. All methods may raise RegistryUnavailable/RegistryError."""

    def __init__(self, kv: KV, prefix: str = "/unitctl/") -> None:
        #: the raw store; only registry/ (and tests poking raw keys) use it
        self.kv = kv
        self.keys = Keys(normalize_prefix(prefix))
        #: the one decoder of keys and values under :attr:`keys`
        self.keyspace = Keyspace(self.keys)
        #: The lease port (the agent's session uses it; nothing else touches the KV's leases).
        self.leases: Leases = KVLeases(kv)
        self.units = UnitStore(kv, self.keyspace)
        self.machines = MachineStore(kv, self.keyspace)
        self.election = LeaderElection(kv, self.keys)
        self.schedules = ScheduleStore(kv, self.keyspace, self.election)

    # The stores a short-lived command rarely needs are made (and their modules
    # imported) on first use: a list verb then loads none of them.

    @functools.cached_property
    def requests(self) -> RequestStore:
        """The agent channel: requests to one machine's agent and its replies."""
        from unitctl.registry.requests import RequestStore
        return RequestStore(self.kv, self.keyspace)

    @functools.cached_property
    def tokens(self) -> TokenStore:
        """The API's bearer tokens."""
        from unitctl.registry.tokens import TokenStore
        return TokenStore(self.kv, self.keys)

    @functools.cached_property
    def audit(self) -> AuditLog:
        """The API's audit log."""
        from unitctl.registry.audit import AuditLog
        return AuditLog(self.kv, self.keys)

    @functools.cached_property
    def metadata(self) -> MetadataStore:
        """Machine metadata set through the API."""
        from unitctl.registry.dynmeta import MetadataStore
        return MetadataStore(self.kv, self.keys)

    @functools.cached_property
    def bundles(self) -> BundleStore:
        """Bundles (``unitctl apply``): unit owners and revisions."""
        from unitctl.registry.bundles import BundleStore
        return BundleStore(self.kv, self.keyspace)

    @functools.cached_property
    def templates(self) -> TemplateStore:
        """Config templates, their per-machine statuses and the data they read."""
        from unitctl.registry.templates import TemplateStore
        return TemplateStore(self.kv, self.keyspace)

    @functools.cached_property
    def rollouts(self) -> RolloutStore:
        """Rolling updates (``unitctl rollout``): records and the bodies they keep."""
        from unitctl.registry.rollouts import RolloutStore
        return RolloutStore(self.kv, self.keyspace, self.election)

    @functools.cached_property
    def services(self) -> ServiceStore:
        """Service records (``services/``), published by the agents."""
        from unitctl.registry.services import ServiceStore
        return ServiceStore(self.kv, self.keyspace)

    @functools.cached_property
    def volumes(self) -> VolumeStore:
        """Volumes (``volumes/``): where each lives, created by the agents."""
        from unitctl.registry.volumes import VolumeStore
        return VolumeStore(self.kv, self.keyspace)

    async def close(self) -> None:
        """Close the connection underneath; the registry is unusable afterwards."""
        await self.kv.close()

    async def peer_secret(self) -> bytes:
        """The cluster's peer secret, created on first use (:mod:`.secret`)."""
        from unitctl.registry.secret import load_secret  # the agent's (imports secrets)

        return await load_secret(self.kv, self.keys.prefix)

    # -- the store -----------------------------------------------------------
    async def ensure_schema(self) -> int:
        """Write the schema version if absent; refuse a store written by a newer schema."""
        return await schema.ensure_schema(self.kv, self.keys)

    async def revision(self) -> int:
        """The store's current revision, read under our own prefix (RBAC-friendly)."""
        return await schema.revision(self.kv, self.keys)

    async def records(self, prefix: str) -> tuple[list[Record], int]:
        """Every key under ``prefix`` (built with :attr:`keys`) decoded, and the read revision.

        Keys that are not part of the layout are left out, and so are keys
        whose value does not decode (reported once).
        """
        records, _, revision = await self.scan(prefix)
        return records, revision

    async def scan(self, prefix: str) -> tuple[list[Record], list[InvalidKey], int]:
        """:meth:`records`, and the keys left out because their value does not decode."""
        rng = await self.kv.get_prefix(prefix)
        decoded, bad = poison.decode_each(rng.kvs, self.keyspace.decode)
        return [r for r in decoded if r is not None], bad, rng.revision

    async def record(self, key: str) -> Record | None:
        """One key built with :attr:`keys`, decoded (None: absent, foreign, undecodable)."""
        kv = await self.kv.get(key)
        decoded = poison.decode_each([] if kv is None else [kv], self.keyspace.decode)[0]
        return decoded[0] if decoded else None

    def watch(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        """Watch any prefix built with :attr:`keys` (decode events with :attr:`keyspace`)."""
        return self.kv.watch_prefix(prefix, start_rev)

    def watch_now(self, prefix: str,
                  created: Callable[[int], None]) -> AsyncIterator[list[Event]] | None:
        """A watch from now that tells ``created`` etcd's revision when etcd created it
        (GatewayKV's ``watch_prefix_now``); None when the store cannot tell."""
        now = getattr(self.kv, "watch_prefix_now", None)
        return None if now is None else now(prefix, created)

    @property
    def watches_blocking(self) -> bool:
        """Whether the store can watch without an event loop (:meth:`watch_blocking`)."""
        return callable(getattr(self.kv, "watch_blocking", None))

    def watch_blocking(self, prefix: str) -> BlockingWatch | None:
        """A blocking watch of ``prefix`` from now (GatewayKV's ``watch_blocking``,
        :mod:`unitctl.registry.gatewayblock`); None when the store has none."""
        make = getattr(self.kv, "watch_blocking", None)
        watch: BlockingWatch | None = None if make is None else make(prefix)
        return watch

    # -- units and bodies (client side) --------------------------------------
    async def get_unit(self, name: str) -> UnitRecord | None:
        return await self.units.get_unit(name)

    async def list_units(self) -> list[UnitRecord]:
        return await self.units.list_units()

    async def units_with_revs(self) -> tuple[dict[str, UnitRecord], dict[str, int], int]:
        """Every unit, each key's mod revision, and the revision of the read."""
        return await self.units.units_with_revs()

    async def get_body(self, sha: str) -> str | None:
        return await self.units.get_body(sha)

    async def get_bodies(self) -> dict[str, str]:
        """Every body (paged reads; prefer :meth:`get_bodies_by_hash`)."""
        return await self.units.get_bodies()

    async def get_bodies_by_hash(self, shas: Iterable[str]) -> dict[str, str]:
        """The bodies of ``shas`` that exist, fetched a few at a time."""
        return await self.units.get_bodies_by_hash(shas)

    async def read_units(self) -> UnitsRead:
        """Every unit that decodes, with revisions, and the invalid unit keys."""
        return await self.units.read_units()

    async def create_unit(self, rec: UnitRecord, body: str, replace: bool = False) -> bool:
        """See :meth:`UnitStore.create_unit`."""
        return await self.units.create_unit(rec, body, replace)

    async def create_units(self, units: list[tuple[UnitRecord, str]]) -> list[bool]:
        """See :meth:`UnitStore.create_units`."""
        return await self.units.create_units(units)

    async def set_desired(self, name: str, desired: DesiredState) -> UnitRecord:
        """Set a unit's desired state (compare-and-swap on the unit key)."""
        return await self.units.set_desired(name, desired)

    async def set_desired_many(self, names: Sequence[str], desired: DesiredState,
                               known: Mapping[str, UnitRecord] | None = None,
                               ) -> list[UnitRecord]:
        """See :meth:`UnitStore.set_desired_many` (batched compare-and-swaps)."""
        return await self.units.set_desired_many(names, desired, known)

    async def destroy_unit(self, name: str) -> bool:
        """Delete a unit; return False if it did not exist. Its body goes with its last user."""
        return await self.units.destroy_unit(name)

    async def destroy_units(self, names: Sequence[str]) -> list[str]:
        """See :meth:`UnitStore.destroy_units` (many units, a few transactions)."""
        return await self.units.destroy_units(names)

    async def collect_body(self, sha: str) -> bool:
        """Delete a body no unit refers to any more; return True if deleted."""
        return await self.units.collect_body(sha)

    # -- machines and states (agent side) ------------------------------------
    async def register_machine(self, machine: Machine, lease: int) -> None:
        """See :meth:`MachineStore.register_machine`."""
        await self.machines.register_machine(machine, lease)

    async def list_machines(self) -> list[Machine]:
        return await self.machines.list_machines()

    async def put_state(self, state: UnitState, lease: int) -> None:
        await self.machines.put_state(state, lease)

    async def publish_states(self, machine_id: str, states: Mapping[str, UnitState | None],
                             lease: int, services: ServiceChanges | None = None) -> None:
        """Put (or, for None, delete) this machine's states, many per transaction;
        with ``services``, its service record changes in the same transactions
        (a started unit's ``active`` and its record land at one revision: one
        write per burst, not two)."""
        if services is None:
            await self.machines.publish_states(machine_id, states, lease)
            return
        ops = self.machines.state_ops(machine_id, states, lease)
        ops += self.services.change_ops(machine_id, services.withdrawn, services.published,
                                        lease)
        for i in range(0, len(ops), MAX_TXN_OPS):
            await self.kv.txn([], ops[i:i + MAX_TXN_OPS])

    async def delete_state(self, name: str, machine_id: str) -> None:
        """Delete only this machine's state of the unit (fleet deleted every machine's)."""
        await self.machines.delete_state(name, machine_id)

    async def list_states(self) -> list[UnitState]:
        return await self.machines.list_states()

    async def states_with_revs(self) -> list[tuple[int, UnitState]]:
        """Every machine's state of every unit, each with its key's mod revision."""
        return await self.machines.states_with_revs()

    async def states_of(self, name: str) -> tuple[list[UnitState], int]:
        """Every machine's state of one unit, and the revision of the read."""
        return await self.machines.states_of(name)

    def watch_states_of(self, name: str, start_rev: int) -> AsyncIterator[list[Event]]:
        """Watch one unit's states only (a change wakes the agents that depend on it)."""
        return self.kv.watch_prefix(self.keys.unit_states(name), start_rev)

    def watch_unit(self, name: str, start_rev: int) -> AsyncIterator[list[Event]]:
        """Watch one unit's key (events of longer names sharing the prefix may come too)."""
        return self.kv.watch_prefix(self.keys.unit(name), start_rev)

    # -- placements, schedules, explanations ---------------------------------
    async def list_placements(self) -> dict[str, str]:
        return await self.schedules.list_placements()

    async def placements_with_revs(self) -> tuple[dict[str, str], dict[str, int]]:
        """Every placement and each placement key's mod revision."""
        return await self.schedules.placements_with_revs()

    async def list_schedules(self) -> dict[str, dict[str, ScheduleEntry]]:
        return await self.schedules.list_schedules()

    async def get_schedule(self, machine_id: str) -> tuple[dict[str, ScheduleEntry], int]:
        """Return this machine's schedule and the revision it was read at."""
        return await self.schedules.get_schedule(machine_id)

    def watch_schedule(self, machine_id: str, start_rev: int) -> AsyncIterator[list[Event]]:
        """Watch only this machine's schedule prefix (one change wakes one agent)."""
        return self.schedules.watch_schedule(machine_id, start_rev)

    async def get_explanation(self, name: str) -> dict[str, str] | None:
        return await self.schedules.get_explanation(name)

    async def list_explanations(self) -> dict[str, dict[str, str]]:
        return await self.schedules.list_explanations()

    async def commit(self, batches: Sequence[Sequence[Group]],
                     lead: Leadership) -> CommitResult:
        """See :meth:`ScheduleStore.commit` (the engine computes the batches)."""
        return await self.schedules.commit(batches, lead)

    # -- leader election -------------------------------------------------------
    async def campaign(self, machine_id: str, lease: int) -> Leadership | None:
        """Take the leader key if it is free; return proof of leadership or None."""
        return await self.election.campaign(machine_id, lease)

    async def leader(self) -> str | None:
        return await self.election.leader()

    async def still_leader(self, lead: Leadership) -> bool:
        return await self.election.still_leader(lead)

    async def resign(self, lead: Leadership) -> None:
        await self.election.resign(lead)
