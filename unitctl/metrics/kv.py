"""A KV that times every etcd request: :class:`MeteredKV` wraps the agent's adapter.

Every call of the :class:`~unitctl.registry.kv.KV` port observes its latency in
``unitctl_etcd_request_seconds{op}``; one that raises counts in
``unitctl_etcd_request_errors{op,error}`` (the exception's class name) and
raises on unchanged. A watch counts as ``op="watch"`` when it ends with an
error. The wrapper changes nothing else: same answers, same exceptions.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar

from unitctl.metrics.catalog import ETCD_ERRORS, ETCD_SECONDS
from unitctl.registry.kv import KV, Compare, Event, KeyValue, Op, Range, Txn

T = TypeVar("T")


class MeteredKV:
    """``inner``, with each request's latency and errors recorded."""

    def __init__(self, inner: KV) -> None:
        self.inner = inner

    @property
    def page_size(self) -> int:
        return self.inner.page_size

    @page_size.setter
    def page_size(self, value: int) -> None:
        self.inner.page_size = value

    async def _timed(self, op: str, call: Awaitable[T]) -> T:
        t0 = time.perf_counter()
        try:
            return await call
        except Exception as exc:
            ETCD_ERRORS.labels(op, type(exc).__name__).inc()
            raise
        finally:
            ETCD_SECONDS.labels(op).observe(time.perf_counter() - t0)

    async def get(self, key: str) -> KeyValue | None:
        return await self._timed("get", self.inner.get(key))

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        return await self._timed("get_many", self.inner.get_many(keys))

    async def get_prefix(self, prefix: str) -> Range:
        return await self._timed("get_prefix", self.inner.get_prefix(prefix))

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        return await self._timed("put", self.inner.put(key, value, lease))

    async def delete(self, key: str, prefix: bool = False) -> int:
        return await self._timed("delete", self.inner.delete(key, prefix))

    async def txn_many(self, txns: Sequence[Txn]) -> list[bool]:
        return await self._timed("txn_many", self.inner.txn_many(txns))

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> bool:
        return await self._timed("txn", self.inner.txn(compares, success, failure))

    async def grant_lease(self, ttl: int) -> int:
        return await self._timed("grant_lease", self.inner.grant_lease(ttl))

    async def refresh_lease(self, lease: int) -> int:
        return await self._timed("refresh_lease", self.inner.refresh_lease(lease))

    async def revoke_lease(self, lease: int) -> None:
        await self._timed("revoke_lease", self.inner.revoke_lease(lease))

    async def watch_prefix(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        try:
            async for batch in self.inner.watch_prefix(prefix, start_rev):
                yield batch
        except Exception as exc:
            ETCD_ERRORS.labels("watch", type(exc).__name__).inc()
            raise

    async def revision(self) -> int:
        return await self._timed("revision", self.inner.revision())

    async def close(self) -> None:
        await self.inner.close()
