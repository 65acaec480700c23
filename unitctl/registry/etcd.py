"""EtcdKV: the KV port on a real etcd v3, through aetcd.

This is the only module of unitctl that imports aetcd. It translates aetcd and
gRPC errors into :mod:`unitctl.errors` at the boundary, adds TLS (aetcd only
opens insecure channels) and spreads requests over several endpoints through
gRPC's ``ipv4:`` multi-address target.

Bounds, set on purpose (see docs/operations.md, "Size limits"):

* a prefix read is paged: etcd ranges of at most ``page_size`` keys (1000),
  each continuing after the last key read, all at the revision of the first
  page, so the pages form one consistent snapshot. A page too large for the
  receive limit (many big values) is read again with half as many keys, down
  to one key, which always fits;
* gRPC receive limit :data:`MAX_RECEIVE_BYTES` = 16 MiB (gRPC's default is
  4 MiB): one value may be 1.5 MiB (etcd's request limit) and a watch reply
  is fragmented by etcd at its request limit, so 16 MiB leaves a wide margin
  while still refusing a runaway reply;
* gRPC send limit :data:`MAX_SEND_BYTES` = 2 MiB: etcd refuses requests over
  1.5 MiB anyway; writers split their transactions under
  :data:`unitctl.registry.kv.MAX_TXN_BYTES`.
"""

from __future__ import annotations

import os

# gRPC's C core logs to stderr on its own ("E1122 ... Corruption detected");
# our errors are reported once, by us. Must be set before grpc is imported.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import aetcd.rpc
import aetcd.utils
import grpc

from unitctl.errors import ConfigError, RegistryError, RegistryUnavailable
from unitctl.loop import checkpoint
from unitctl.registry import blocking
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.grpctarget import grpc_target, parse_endpoint
from unitctl.registry.kv import (
    PAGE_KEYS,
    TXNS_IN_FLIGHT,
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
from unitctl.registry.leasestream import LeaseKeepalives

#: gRPC's limit on one reply (see the module docstring).
MAX_RECEIVE_BYTES = 16 * 1024 * 1024
#: gRPC's limit on one request (etcd's own limit is 1.5 MiB).
MAX_SEND_BYTES = 2 * 1024 * 1024

T = TypeVar("T")

__all__ = ["EtcdConfig", "EtcdKV", "grpc_target"]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read TLS file {path}: {exc.strerror}") from exc


class _Client(aetcd.Client):  # type: ignore[misc]
    """aetcd's client with TLS: aetcd itself only opens insecure channels."""

    def __init__(self, credentials: grpc.ChannelCredentials | None, **kw: Any) -> None:
        super().__init__(**kw)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._credentials is None or self._connected.is_set():
            await super().connect()
            return
        real = aetcd.rpc.insecure_channel
        creds = self._credentials
        aetcd.rpc.insecure_channel = lambda target, options=None: aetcd.rpc.secure_channel(
            target, creds, options=options)
        try:
            await super().connect()
        finally:
            aetcd.rpc.insecure_channel = real

    async def range_page(self, key: bytes, end: bytes, limit: int, revision: int) -> Any:
        """One page of a range read: at most ``limit`` keys from ``key``, at ``revision``
        (0: the current one). aetcd's own range calls pass neither."""
        await self.connect()
        try:
            return await self.kvstub.Range(_range_request(key, end, limit, revision),
                                           timeout=self._timeout, metadata=self.metadata)
        except aetcd.rpc.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise _PageTooLarge(f"etcd reply too large: {exc.details()}") from exc
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE:  # the revision was compacted
                raise RegistryUnavailable(f"etcd read lost history: {exc.details()}") from exc
            aetcd.exceptions._handle_exception(exc)
            raise


#: Keys per transaction of :meth:`EtcdKV.get_many`: values of etcd's request limit
#: each (1.5 MiB) stay under the receive limit (:data:`MAX_RECEIVE_BYTES`).
GET_MANY_KEYS = 10


class _PageTooLarge(RegistryError):
    """A page of a prefix read was over the receive limit: read fewer keys."""


def _range_request(key: bytes, end: bytes, limit: int, revision: int) -> Any:
    return aetcd.rpc.RangeRequest(key=key, range_end=end, limit=limit, revision=revision,
                                  sort_order=aetcd.rpc.RangeRequest.ASCEND,
                                  sort_target=aetcd.rpc.RangeRequest.KEY)


def _map_error(exc: BaseException) -> RegistryError:
    unreachable = (aetcd.exceptions.ConnectionFailedError,
                   aetcd.exceptions.ConnectionTimeoutError, TimeoutError, ConnectionError)
    if isinstance(exc, unreachable):
        return RegistryUnavailable(f"etcd unreachable: {_short(exc)}")
    if isinstance(exc, aetcd.exceptions.UnauthenticatedError):
        return RegistryError(f"etcd refused the credentials: {_short(exc)}")
    if isinstance(exc, aetcd.exceptions.RevisionCompactedError):
        return RegistryUnavailable(f"etcd watch lost history: {_short(exc)}")
    return RegistryError(f"etcd error: {_short(exc)}")


def _event(ev: Any) -> Event:
    kind = EventKind.PUT if ev.kind == "PUT" else EventKind.DELETE
    return Event(kind, ev.kv.key.decode(), bytes(ev.kv.value), ev.kv.mod_revision)


def _reraise_cancel(exc: BaseException) -> None:
    """A call cut short because our task is being cancelled must stay a cancellation.

    gRPC may surface it as a CANCELLED RpcError; mapped to RegistryError, a
    retry loop would swallow it and the task would never end.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError() from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


_CMP_FIELD = {CompareField.VALUE: "value", CompareField.VERSION: "version",
              CompareField.CREATE: "create", CompareField.MOD: "mod"}


class EtcdKV:
    """The KV port over aetcd. Create with :meth:`connect`."""

    def __init__(self, client: Any, timeout: float) -> None:
        self._c = client
        self._timeout = timeout
        self.page_size = PAGE_KEYS
        self.keepalives = LeaseKeepalives(
            self._keepalive_stream, lambda lease: aetcd.rpc.LeaseKeepAliveRequest(ID=lease),
            timeout)

    @classmethod
    async def connect(cls, cfg: EtcdConfig) -> EtcdKV:
        """Build a client for ``cfg`` (the connection itself is lazy)."""
        host, port, tls = grpc_target(cfg.endpoints)
        creds = None
        if tls or cfg.ca_file or cfg.cert_file:
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(cfg.ca_file) if cfg.ca_file else None,
                private_key=_read(cfg.key_file) if cfg.key_file else None,
                certificate_chain=_read(cfg.cert_file) if cfg.cert_file else None)
        if bool(cfg.username) != bool(cfg.password):
            raise ConfigError("etcd username and password must be given together")
        # Reconnect fast after etcd comes back (gRPC's default backoff grows to
        # 120 s), and notice dead connections (etcd refuses pings under 5 s).
        options: dict[str, object] = {
            "grpc.initial_reconnect_backoff_ms": 100, "grpc.min_reconnect_backoff_ms": 100,
            "grpc.max_reconnect_backoff_ms": 1000, "grpc.keepalive_time_ms": 5000,
            "grpc.keepalive_timeout_ms": 1000, "grpc.keepalive_permit_without_calls": 1,
            "grpc.max_receive_message_length": MAX_RECEIVE_BYTES,
            "grpc.max_send_message_length": MAX_SEND_BYTES,
        }
        if creds is not None and host.startswith(("ipv4:", "ipv6:")):
            # gRPC would check the server certificate against the whole
            # multi-address target; check it against the first member's address
            # (every member's certificate carries the members' IPs as SANs).
            options["grpc.ssl_target_name_override"] = parse_endpoint(cfg.endpoints[0])[1]
        client = _Client(creds, host=host, port=port, username=cfg.username or None,
                         password=cfg.password or None, timeout=cfg.timeout,
                         options=options, connect_wait_timeout=max(1, int(cfg.timeout)))
        return cls(client, cfg.timeout)

    async def _call(self, aw: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(aw, self._timeout + 0.5)
        except RegistryError:
            raise
        except (TimeoutError, aetcd.exceptions.ClientError, grpc.RpcError, OSError) as exc:
            _reraise_cancel(exc)
            raise _map_error(exc) from exc

    @staticmethod
    def _kv(kv: Any) -> KeyValue:
        return KeyValue(kv.key.decode(), bytes(kv.value), kv.create_revision, kv.mod_revision,
                        kv.version, kv.lease)

    async def get(self, key: str) -> KeyValue | None:
        got = await self._call(self._c.get(key.encode()))
        return None if got is None else self._kv(got)

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        found: list[KeyValue | None] = []
        for i in range(0, len(keys), GET_MANY_KEYS):
            gets = [self._c.transactions.get(k.encode()) for k in keys[i:i + GET_MANY_KEYS]]
            _, ranges = await self._call(self._c.transaction(compare=[], success=gets,
                                                             failure=[]))
            found += [self._kv(rng[0][1]) if rng else None for rng in ranges]
        return found

    async def get_prefix(self, prefix: str) -> Range:
        start = prefix.encode()
        end = aetcd.utils.prefix_range_end(start)
        kvs: list[KeyValue] = []
        revision, limit = 0, max(1, self.page_size)
        while True:
            try:
                page = await self._call(self._c.range_page(start, end, limit, revision))
            except _PageTooLarge:
                if limit == 1:
                    raise
                limit = max(1, limit // 2)
                continue
            revision = revision or int(page.header.revision)
            kvs.extend(self._kv(kv) for kv in page.kvs)
            if not page.more or not page.kvs:
                return Range(tuple(kvs), revision)
            start = bytes(page.kvs[-1].key) + b"\0"

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        r = await self._call(self._c.put(key.encode(), value, lease=lease or None))
        return int(r.header.revision)

    async def delete(self, key: str, prefix: bool = False) -> int:
        if prefix:
            r = await self._call(self._c.delete_prefix(key.encode()))
        else:
            r = await self._call(self._c.delete(key.encode()))
        return int(getattr(r, "deleted", 0)) if r is not None else 0

    def _compare(self, c: Compare) -> Any:
        key = c.key.encode()
        range_end = aetcd.utils.prefix_range_end(key) if c.prefix else None
        cmp = getattr(self._c.transactions, _CMP_FIELD[c.field])(key, range_end)
        operand = c.operand
        if c.op == "==":
            return cmp == operand
        if c.op == "!=":
            return cmp != operand
        if c.op == "<":
            return cmp < operand
        return cmp > operand

    def _op(self, op: Op) -> Any:
        t = self._c.transactions
        if isinstance(op, Put):
            return t.put(op.key.encode(), op.value, lease=op.lease or None)
        assert isinstance(op, Delete)
        key = op.key.encode()
        return t.delete(key, range_end=aetcd.utils.prefix_range_end(key) if op.prefix else None)

    async def txn_many(self, txns: Sequence[Txn]) -> list[bool]:
        """Up to :data:`TXNS_IN_FLIGHT` at once on the channel."""
        return await blocking.gather_bounded([self.txn(c, o) for c, o in txns], TXNS_IN_FLIGHT)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> bool:
        ok, _ = await self._call(self._c.transaction(
            compare=[self._compare(c) for c in compares],
            success=[self._op(o) for o in success], failure=[self._op(o) for o in failure]))
        return bool(ok)

    async def grant_lease(self, ttl: int) -> int:
        lease = await self._call(self._c.lease(ttl))
        return int(lease.id)

    async def refresh_lease(self, lease: int) -> int:
        """On a keepalive stream kept open (:mod:`unitctl.registry.leasestream`)."""
        return await self._call(self._refresh(lease))

    async def _refresh(self, lease: int) -> int:
        try:
            return await self.keepalives.refresh(lease)
        except aetcd.rpc.AioRpcError as exc:
            aetcd.exceptions._handle_exception(exc)  # UNAVAILABLE -> ConnectionFailedError
            raise

    async def _keepalive_stream(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        await self._c.connect()
        call = self._c.leasestub.LeaseKeepAlive(requests, metadata=self._c.metadata)
        try:
            async for reply in call:
                yield reply
        finally:
            call.cancel()

    async def revoke_lease(self, lease: int) -> None:
        try:
            await self._call(self._c.revoke_lease(lease))
        except RegistryUnavailable:
            raise
        except RegistryError:
            return  # already expired: nothing to revoke

    async def revision(self) -> int:
        rng = await self._call(self._c.get_prefix(b"\0unitctl-revision-probe"))
        return int(rng.header.revision)

    async def watch_prefix(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        """Each batch holds every event etcd has sent so far: one watch response
        (a transaction's puts, a catch-up) is one batch, not one per event
        (aetcd's own iterator yields event by event: an engine commit of 10
        units woke their agent 10 times)."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        watch_id = await self._call(self._open_watch(prefix.encode(), start_rev, queue))
        try:
            checkpoint()  # wait_for (3.11) may have eaten a cancellation meanwhile
            while True:
                items = [await queue.get()]
                items += [queue.get_nowait() for _ in range(queue.qsize())]
                ended = None in items  # the stream closed (aetcd's iterator stops there)
                items = items[:items.index(None)] if ended else items
                if batch := [_event(ev) for ev in items if not isinstance(ev, BaseException)]:
                    yield batch
                for error in (ev for ev in items if isinstance(ev, BaseException)):
                    aetcd.exceptions._handle_exception(error)  # as aetcd's iterator maps it
                if ended:
                    return
        except (aetcd.exceptions.ClientError, grpc.RpcError, OSError) as exc:
            _reraise_cancel(exc)
            raise _map_error(exc) from exc
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._close_watch(watch_id), 1)

    async def _open_watch(self, prefix: bytes, start_rev: int, queue: asyncio.Queue[Any]) -> int:
        """Register a watch of ``prefix`` on the client's watch stream (what
        ``aetcd.Client.watch_prefix`` does, with our own queue): every event, or
        the error that ends the watch, is put on ``queue`` as it arrives."""
        async def arrived(event_or_error: Any) -> None:
            queue.put_nowait(event_or_error)

        try:
            await self._c.connect()
            # fragment: etcd splits a reply over its request limit (a watch catching
            # up on many big bodies), so no reply nears the receive limit
            callback = await self._c._watcher.add_callback(
                prefix, arrived, range_end=aetcd.utils.prefix_range_end(prefix),
                start_revision=start_rev, fragment=True)
        except aetcd.rpc.AioRpcError as exc:
            aetcd.exceptions._handle_exception(exc)
            raise
        return int(callback.watch_id)

    async def _close_watch(self, watch_id: int) -> None:
        await self._c._watcher.cancel(watch_id)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.keepalives.close(), 2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._c.close(), 2)
