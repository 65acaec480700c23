"""Machines and their unit states: the agent-owned part of the registry.

``machines/<machine>`` and ``states/<unit>/<machine>`` are written by each
agent under its own lease, so both vanish when the agent's session ends.
A machine id is registered by one live lease at a time.
"""

from __future__ import annotations

from collections.abc import Mapping

from unitctl.errors import ConflictError
from unitctl.model import Machine, UnitState
from unitctl.registry import codec, poison
from unitctl.registry.keys import Keys
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.kv import KV, MAX_TXN_OPS, Delete, Op, Put, mod_is


class MachineStore:
    """Machines and per-machine unit states over the KV port."""

    def __init__(self, kv: KV, keyspace: Keyspace) -> None:
        self.kv = kv
        self.keyspace = keyspace
        self.keys: Keys = keyspace.keys

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
        """Every machine whose key decodes (others are skipped and reported once)."""
        rng = await self.kv.get_prefix(self.keys.machines())
        return poison.decode_each(rng.kvs, self.keyspace.machine)[0]

    async def put_state(self, state: UnitState, lease: int) -> None:
        k = self.keys.state(state.name, state.machine_id)
        await self.kv.put(k, codec.encode_state(state), lease)

    async def publish_states(self, machine_id: str, states: Mapping[str, UnitState | None],
                             lease: int) -> None:
        """Put (or, for None, delete) this machine's states, many per transaction."""
        ops = self.state_ops(machine_id, states, lease)
        for i in range(0, len(ops), MAX_TXN_OPS):
            await self.kv.txn([], ops[i:i + MAX_TXN_OPS])

    def state_ops(self, machine_id: str, states: Mapping[str, UnitState | None],
                  lease: int) -> list[Op]:
        """The writes of :meth:`publish_states`: a put under ``lease`` per state, a
        delete per None."""
        return [Put(self.keys.state(n, machine_id), codec.encode_state(st), lease)
                if st is not None else Delete(self.keys.state(n, machine_id))
                for n, st in states.items()]

    async def delete_state(self, name: str, machine_id: str) -> None:
        """Delete only this machine's state of the unit (fleet deleted every machine's)."""
        await self.kv.delete(self.keys.state(name, machine_id))

    async def list_states(self) -> list[UnitState]:
        return [state for _, state in await self.states_with_revs()]

    async def states_of(self, name: str) -> tuple[list[UnitState], int]:
        """Every machine's state of one unit, and the revision of the read."""
        rng = await self.kv.get_prefix(self.keys.unit_states(name))
        return poison.decode_each(rng.kvs, self.keyspace.state)[0], rng.revision

    async def states_with_revs(self) -> list[tuple[int, UnitState]]:
        """Every machine's state of every unit, each with its key's mod revision."""
        rng = await self.kv.get_prefix(self.keys.states())
        return poison.decode_each(rng.kvs, lambda kv: (kv.mod_rev, self.keyspace.state(kv)))[0]
