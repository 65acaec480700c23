"""MemoryKV: an in-process fake of etcd v3 with the same contract as EtcdKV.

It keeps etcd's revision model, compares (also over prefixes), leases with
expiry, and prefix watches from a revision, so the registry code above it runs
unchanged. Time comes from an injectable clock (``time.monotonic`` by default);
expired leases are reaped on every operation and by a timer on the running loop.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from unitctl.errors import RegistryError, RegistryUnavailable
from unitctl.registry.kv import (
    PAGE_KEYS,
    Compare,
    CompareField,
    Delete,
    Event,
    EventKind,
    KeyValue,
    Op,
    Put,
    Range,
    Txn,
)

#: etcd's default ``--max-txn-ops``: the most compares, or ops in one branch,
#: a transaction may hold (refused like etcd refuses them).
ETCD_TXN_OPS = 128


@dataclass
class _Lease:
    ttl: int
    deadline: float
    keys: set[str] = field(default_factory=set)


@dataclass
class _Watcher:
    prefix: str
    queue: asyncio.Queue[list[Event] | None]


def _compare_one(c: Compare, kv: KeyValue | None) -> bool:
    if c.field is CompareField.VALUE:
        if kv is None:
            return False
        actual: int | bytes = kv.value
    else:
        actual = 0 if kv is None else {
            CompareField.VERSION: kv.version, CompareField.CREATE: kv.create_rev,
            CompareField.MOD: kv.mod_rev,
        }[c.field]
    return _apply_op(c.op, actual, c.operand)


def _apply_op(op: str, a: int | bytes, b: int | bytes) -> bool:
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if op == "<":
        return a < b  # type: ignore[operator]
    return a > b  # type: ignore[operator]


class MemoryKV:
    """The fake store. One instance is one "etcd cluster"; share it between actors."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, KeyValue] = {}
        self._keys: list[str] = []  # sorted
        self._rev = 1
        self._history: list[Event] = []
        self._leases: dict[int, _Lease] = {}
        self._lease_ids = itertools.count(0x1000)
        self._watchers: list[_Watcher] = []
        #: When True every call raises RegistryUnavailable (simulated outage).
        self.unavailable = False
        #: Keys per page of a prefix read; the fake reads every page at once, at
        #: one revision, as the etcd adapter's pages are read at one revision.
        self.page_size = PAGE_KEYS

    # -- helpers ---------------------------------------------------------
    def _check(self) -> None:
        if self.unavailable:
            raise RegistryUnavailable("memory registry is unavailable (simulated outage)")
        self._reap()

    def _reap(self) -> None:
        now = self._clock()
        expired = [lid for lid, lease in self._leases.items() if lease.deadline <= now]
        for lid in expired:
            self._drop_lease(lid)

    def _drop_lease(self, lid: int) -> None:
        lease = self._leases.pop(lid, None)
        if lease and lease.keys:
            self._rev += 1
            events = [self._delete_key(k) for k in sorted(lease.keys) if k in self._data]
            self._publish([e for e in events if e is not None])

    def _scan(self, prefix: str) -> list[str]:
        lo = bisect.bisect_left(self._keys, prefix)
        out = []
        for k in self._keys[lo:]:
            if not k.startswith(prefix):
                break
            out.append(k)
        return out

    def _put_key(self, key: str, value: bytes, lease: int) -> Event:
        old = self._data.get(key)
        if old is None:
            bisect.insort(self._keys, key)
            kv = KeyValue(key, value, self._rev, self._rev, 1, lease)
        else:
            if old.lease and old.lease in self._leases:
                self._leases[old.lease].keys.discard(key)
            kv = KeyValue(key, value, old.create_rev, self._rev, old.version + 1, lease)
        if lease:
            self._leases[lease].keys.add(key)
        self._data[key] = kv
        return Event(EventKind.PUT, key, value, self._rev)

    def _delete_key(self, key: str) -> Event | None:
        old = self._data.pop(key, None)
        if old is None:
            return None
        self._keys.remove(key)
        if old.lease and old.lease in self._leases:
            self._leases[old.lease].keys.discard(key)
        return Event(EventKind.DELETE, key, b"", self._rev)

    def _publish(self, events: list[Event]) -> None:
        if not events:
            return
        self._history.extend(events)
        for w in self._watchers:
            mine = [e for e in events if e.key.startswith(w.prefix)]
            if mine:
                w.queue.put_nowait(mine)

    def _apply(self, ops: Sequence[Op]) -> None:
        if not ops:
            return
        self._rev += 1
        events: list[Event] = []
        for op in ops:
            if isinstance(op, Put):
                if op.lease and op.lease not in self._leases:
                    raise RegistryUnavailable(f"lease {op.lease:x} not found")
                events.append(self._put_key(op.key, op.value, op.lease))
            else:
                keys = self._scan(op.key) if op.prefix else [op.key]
                events.extend(e for k in keys if (e := self._delete_key(k)) is not None)
        if not events:
            self._rev -= 1
        self._publish(events)

    def _holds(self, c: Compare) -> bool:
        if not c.prefix:
            return _compare_one(c, self._data.get(c.key))
        keys = self._scan(c.key)
        if not keys:
            return c.field is not CompareField.VALUE and _compare_one(c, None)
        return all(_compare_one(c, self._data[k]) for k in keys)

    # -- the KV port -----------------------------------------------------
    async def get(self, key: str) -> KeyValue | None:
        self._check()
        return self._data.get(key)

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        self._check()
        return [self._data.get(k) for k in keys]

    async def get_prefix(self, prefix: str) -> Range:
        self._check()
        keys = self._scan(prefix)
        size = max(1, self.page_size)
        pages = [keys[i:i + size] for i in range(0, len(keys), size)]
        return Range(tuple(self._data[k] for page in pages for k in page), self._rev)

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        self._check()
        self._apply([Put(key, value, lease)])
        return self._rev

    async def delete(self, key: str, prefix: bool = False) -> int:
        self._check()
        n = len(self._scan(key)) if prefix else int(key in self._data)
        self._apply([Delete(key, prefix)])
        return n

    async def txn_many(self, txns: Sequence[Txn]) -> list[bool]:
        return [await self.txn(compares, ops) for compares, ops in txns]

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> bool:
        self._check()
        if max(len(compares), len(success), len(failure)) > ETCD_TXN_OPS:
            raise RegistryError("etcd error: too many operations in txn request")
        for ops in (success, failure):
            keys = [op.key for op in ops]
            if len(keys) != len(set(keys)):
                raise RegistryError("etcd error: duplicate key given in txn request")
        ok = all(self._holds(c) for c in compares)
        self._apply(success if ok else failure)
        return ok

    async def grant_lease(self, ttl: int) -> int:
        self._check()
        lid = next(self._lease_ids)
        self._leases[lid] = _Lease(ttl, self._clock() + ttl)
        self._arm_reaper(ttl)
        return lid

    def _arm_reaper(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(delay + 0.01, self._reap)

    async def refresh_lease(self, lease: int) -> int:
        self._check()
        entry = self._leases.get(lease)
        if entry is None:
            return -1
        entry.deadline = self._clock() + entry.ttl
        self._arm_reaper(entry.ttl)
        return entry.ttl

    async def revoke_lease(self, lease: int) -> None:
        self._check()
        self._drop_lease(lease)

    def expire_lease(self, lease: int) -> None:
        """Test hook: expire a lease now, as a dead machine's would."""
        self._drop_lease(lease)

    async def revision(self) -> int:
        self._check()
        return self._rev

    async def watch_prefix(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        self._check()
        w = _Watcher(prefix, asyncio.Queue())
        backlog = [e for e in self._history if e.mod_rev >= start_rev and e.key.startswith(prefix)]
        if backlog:
            w.queue.put_nowait(backlog)
        self._watchers.append(w)
        try:
            while True:
                batch = await w.queue.get()
                if batch is None or self.unavailable:
                    raise RegistryUnavailable("memory registry watch closed")
                yield batch
        finally:
            self._watchers.remove(w)

    def break_watches(self) -> None:
        """Test hook: end every open watch with RegistryUnavailable."""
        for w in self._watchers:
            w.queue.put_nowait(None)

    async def close(self) -> None:
        return None
