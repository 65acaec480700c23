"""The agent channel's store: requests to one machine's agent and its replies.

A client writes ``requests/<machine>/<id>`` under its own short lease
(:meth:`RequestStore.send`); only that machine's agent watches
``requests/<machine>/`` (one request wakes one agent). The agent claims a
request by creating ``replies/<id>/0`` (its ack) in a create-if-absent
transaction (:meth:`claim`), so a request is answered once even across an
agent's re-exec, then writes the answer under the *request's* lease
(:meth:`answer`): when the client exits or dies its lease ends, and the
request and every reply go with it (and the agent's next write fails, which
stops the command). The protocol of the values is :mod:`unitctl.channel`.

etcd's TLS and authentication authenticate both sides: only an etcd user who
may write the prefix can ask, and an answer can only come from one who may
write it too.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable

from unitctl.channel import Reply, ReplyKind, Request, encode_reply, encode_request
from unitctl.errors import RegistryError
from unitctl.registry import poison
from unitctl.registry.keyspace import Keyspace
from unitctl.registry.kv import (
    KV,
    MAX_TXN_OPS,
    Compare,
    CompareField,
    Delete,
    Event,
    EventKind,
    KeyValue,
    Put,
)
from unitctl.registry.poison import InvalidKey
from unitctl.registry.schema import revision


class RequestStore:
    """Requests and replies over the KV port."""

    def __init__(self, kv: KV, keyspace: Keyspace) -> None:
        self.kv = kv
        self.keyspace = keyspace
        self.keys = keyspace.keys

    # -- the client's side ---------------------------------------------------
    async def send(self, machine: str, request_id: str, req: Request) -> int:
        """Write the request under ``req.lease``; return the revision to watch replies after.

        Raises RegistryError if the id is taken (ids are random: never in practice).
        """
        rev = await revision(self.kv, self.keys)
        key = self.keys.request(machine, request_id)
        created = await self.kv.txn([Compare(key, CompareField.CREATE, "==", 0)],
                                    [Put(key, encode_request(req), req.lease)])
        if not created:
            raise RegistryError(f"request id {request_id} is taken")
        return rev

    async def withdraw(self, machine: str, request_id: str) -> None:
        """Delete the request: its agent stops answering (``journal -f`` ends)."""
        await self.kv.delete(self.keys.request(machine, request_id))

    async def replies(self, request_id: str,
                      after: int) -> AsyncGenerator[list[tuple[str, int, Reply]], None]:
        """Batches of (key, seq, reply) written after revision ``after``, in order.

        A reply that does not decode is reported (once) and skipped.
        """
        async for batch in self.kv.watch_prefix(self.keys.replies(request_id), after + 1):
            yield list(self._decoded_replies(batch))

    def _decoded_replies(self, batch: Iterable[Event]) -> Iterable[tuple[str, int, Reply]]:
        for ev in batch:
            if ev.kind is not EventKind.PUT:
                continue
            try:
                seq, reply = self.keyspace.reply(_as_kv(ev))
            except poison.DECODE_ERRORS as exc:
                poison.invalid(ev.key, ev.mod_rev, exc)
                continue
            yield ev.key, seq, reply

    async def consumed(self, keys: Iterable[str]) -> None:
        """Delete replies already read (a long ``journal -f`` keeps etcd small)."""
        ops = [Delete(k) for k in keys]
        for i in range(0, len(ops), MAX_TXN_OPS):
            await self.kv.txn([], ops[i:i + MAX_TXN_OPS])

    # -- the agent's side ----------------------------------------------------
    async def pending(self, machine: str) -> tuple[dict[str, Request], list[InvalidKey], int]:
        """This machine's requests that decode, the keys that do not, and the read revision."""
        rng = await self.kv.get_prefix(self.keys.requests(machine))
        decoded, bad = poison.decode_each(rng.kvs, self.keyspace.request)
        return dict(decoded), bad, rng.revision

    def watch_requests(self, machine: str, start_rev: int) -> AsyncIterator[list[Event]]:
        """Watch only this machine's requests (one request wakes one agent)."""
        return self.kv.watch_prefix(self.keys.requests(machine), start_rev)

    async def claim(self, request_id: str, lease: int) -> bool:
        """Take the request (write the ack, seq 0) unless someone did; True if we did.

        Raises RegistryError when the lease is gone (the client left).
        """
        key = self.keys.reply(request_id, 0)
        return await self.kv.txn([Compare(key, CompareField.CREATE, "==", 0)],
                                 [Put(key, encode_reply(Reply(ReplyKind.ACK)), lease)])

    async def answer(self, request_id: str, seq: int, reply: Reply, lease: int) -> None:
        """Write one reply under the request's lease (RegistryError once it is gone)."""
        await self.kv.put(self.keys.reply(request_id, seq), encode_reply(reply), lease)


def _as_kv(ev: Event) -> KeyValue:
    return KeyValue(ev.key, ev.value, 0, ev.mod_rev, 1)
