"""The key-value port: the etcd v3 primitives unitctl relies on.

Two implementations exist and pass one contract suite
(``tests/contract/test_kv_contract.py``): :class:`unitctl.registry.etcd.EtcdKV`
(the only module that imports aetcd) and :class:`unitctl.registry.memory.MemoryKV`
(an in-process fake with the same revision, lease and watch semantics).

Semantics are etcd's:

* every write bumps one global *revision*; a key carries ``create_rev``,
  ``mod_rev`` and ``version`` (0 for an absent key);
* a transaction applies all ``success`` ops when every compare holds, else none;
  a compare over a prefix holds when it holds for every key in it, and a
  ``version``/``create``/``mod`` compare over an empty prefix sees 0;
* a key put under a lease is deleted when the lease expires or is revoked;
* a watch from revision R delivers every event with ``mod_rev >= R`` in order;
* a prefix read is read in pages of at most ``page_size`` keys, every page at
  the revision of the first one: the result is one consistent snapshot however
  many pages it took (a revision compacted meanwhile is RegistryUnavailable,
  and the caller reads again).

Bounds: no request may exceed etcd's request limit (1.5 MiB by default) or
hold more than :data:`MAX_TXN_OPS` operations; writers split their
transactions with :func:`request_bytes` under :data:`MAX_TXN_BYTES`.

Errors: ``RegistryUnavailable`` when the store cannot be reached,
``RegistryError`` for anything else. A failed compare is not an error:
``txn`` returns False.

The records here are :class:`~unitctl.record.Frozen` (frozen dataclasses'
behaviour without their start-up cost: every CLI command imports this module).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from unitctl.record import Frozen, init


class KeyValue(Frozen):
    """A stored key with its revisions."""

    __slots__ = ("create_rev", "key", "lease", "mod_rev", "value", "version")
    key: str
    value: bytes
    create_rev: int
    mod_rev: int
    version: int
    lease: int

    def __init__(self, key: str, value: bytes, create_rev: int, mod_rev: int, version: int,
                 lease: int = 0) -> None:
        init(self, key, value, create_rev, mod_rev, version, lease)


class CompareField(enum.Enum):
    """What a :class:`Compare` looks at."""

    VALUE = "value"
    VERSION = "version"
    CREATE = "create"
    MOD = "mod"


class Compare(Frozen):
    """``field(key) op operand``; ``prefix=True`` compares every key under ``key``."""

    __slots__ = ("field", "key", "op", "operand", "prefix")
    key: str
    field: CompareField
    op: str  # one of == != < >
    operand: int | bytes
    prefix: bool

    def __init__(self, key: str, field: CompareField, op: str, operand: int | bytes,
                 prefix: bool = False) -> None:
        init(self, key, field, op, operand, prefix)


class Put(Frozen):
    """Write ``value`` at ``key`` (under ``lease``, 0: none)."""

    __slots__ = ("key", "lease", "value")
    key: str
    value: bytes
    lease: int

    def __init__(self, key: str, value: bytes, lease: int = 0) -> None:
        init(self, key, value, lease)


class Delete(Frozen):
    """Delete ``key`` (``prefix=True``: every key under it)."""

    __slots__ = ("key", "prefix")
    key: str
    prefix: bool

    def __init__(self, key: str, prefix: bool = False) -> None:
        init(self, key, prefix)


Op = Put | Delete

#: etcd refuses a transaction with more than 128 compares, or more than 128
#: ops in one branch (``--max-txn-ops``, each list counted on its own).
MAX_TXN_OPS = 120

#: The most key and value bytes one transaction may carry: etcd refuses
#: requests over 1.5 MiB (``--max-request-bytes``); the 0.3 MiB left is the
#: margin for protobuf framing and the guards a commit adds. One unit body
#: (at most 1 MiB, the CLI's limit) plus its keys always fits.
MAX_TXN_BYTES = 1_258_291

#: Keys per page of a prefix read (each reply stays far under the gRPC limit
#: for the small values of units/, schedule/, states/ ...).
PAGE_KEYS = 1000

#: Compares and the ops they guard, applied together or not at all; several
#: groups may share one transaction (then all of them apply or none).
Group = tuple[list[Compare], list[Op]]


class EventKind(enum.Enum):
    PUT = "put"
    DELETE = "delete"


class Event(Frozen):
    """One change seen by a watch."""

    __slots__ = ("key", "kind", "mod_rev", "value")
    kind: EventKind
    key: str
    value: bytes
    mod_rev: int

    def __init__(self, kind: EventKind, key: str, value: bytes, mod_rev: int) -> None:
        init(self, kind, key, value, mod_rev)


class Range(Frozen):
    """The result of a prefix read: the keys and the store revision of the read."""

    __slots__ = ("kvs", "revision")
    kvs: tuple[KeyValue, ...]
    revision: int

    def __init__(self, kvs: tuple[KeyValue, ...], revision: int) -> None:
        init(self, kvs, revision)


#: One transaction of :meth:`KV.txn_many`: its compares and its ops.
Txn = tuple[Sequence[Compare], Sequence[Op]]

#: Transactions :meth:`KV.txn_many` keeps in flight at once: a bulk command's
#: transactions (10,000 units: about 80) no longer wait for each other's round
#: trip, and etcd applies them as fast as it can; more would only queue in etcd.
TXNS_IN_FLIGHT = 4


def request_bytes(compares: Sequence[Compare], ops: Sequence[Op]) -> int:
    """The key and value bytes a transaction of ``compares`` and ``ops`` sends."""
    size = 0
    for c in compares:
        size += len(c.key.encode()) + (len(c.operand) if isinstance(c.operand, bytes) else 8)
    for op in ops:
        size += len(op.key.encode()) + (len(op.value) if isinstance(op, Put) else 0)
    return size


def mod_is(key: str, rev: int) -> Compare:
    """Compare: key's mod revision equals ``rev`` (0 = the key is absent)."""
    return Compare(key, CompareField.MOD, "==", rev)


def value_is(key: str, value: bytes) -> Compare:
    """Compare: key exists and holds ``value``."""
    return Compare(key, CompareField.VALUE, "==", value)


def prefix_empty(prefix: str) -> Compare:
    """Compare: no key exists under ``prefix``."""
    return Compare(prefix, CompareField.VERSION, "==", 0, prefix=True)


class KV(Protocol):
    """An etcd-like store (see the module docstring for the contract)."""

    #: the most keys one reply of :meth:`get_prefix` holds (tests set it tiny)
    page_size: int

    async def get(self, key: str) -> KeyValue | None:
        """Return the key, or None when it does not exist."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        """Return each of ``keys`` in order (None: it does not exist), read in one
        round trip at one revision (a transaction of range ops). At most
        :data:`MAX_TXN_OPS` keys; an adapter whose client bounds a reply's size
        splits the read so that no reply can exceed it (every value is at most
        etcd's request limit), each part at one revision."""
        ...

    async def get_prefix(self, prefix: str) -> Range:
        """Return every key under ``prefix`` sorted by key, and the read revision.

        Read in pages of at most :attr:`page_size` keys, all at one revision.
        """
        ...

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        """Write a key unconditionally; return the new revision."""
        ...

    async def delete(self, key: str, prefix: bool = False) -> int:
        """Delete a key (or every key under a prefix); return how many were deleted."""
        ...

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> bool:
        """Apply ``success`` if all compares hold (return True), else ``failure``."""
        ...

    async def txn_many(self, txns: Sequence[Txn]) -> list[bool]:
        """Apply independent transactions (no key one compares or writes is
        compared or written by another), each as :meth:`txn` without failure
        ops; return whether each one's compares held, in order. Up to
        :data:`TXNS_IN_FLIGHT` may be in flight at once, so they may apply in
        any order; when one raises, the others may or may not have applied."""
        ...

    async def grant_lease(self, ttl: int) -> int:
        """Create a lease of ``ttl`` seconds; return its id."""
        ...

    async def refresh_lease(self, lease: int) -> int:
        """Renew a lease; return its TTL, or a value <= 0 when it has expired."""
        ...

    async def revoke_lease(self, lease: int) -> None:
        """Revoke a lease and delete its keys (no error if already gone)."""
        ...

    def watch_prefix(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        """Yield batches of events under ``prefix`` from ``start_rev`` on, forever.

        Raises RegistryUnavailable when the connection is lost; the caller
        re-reads and watches again from the revision of its read.
        """
        ...

    async def revision(self) -> int:
        """Return the store's current revision."""
        ...

    async def close(self) -> None:
        """Release connections; pending watches end."""
        ...
