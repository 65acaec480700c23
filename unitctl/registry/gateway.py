"""GatewayKV: the KV port on etcd's JSON gateway (HTTP/1.1, no gRPC): the CLI's and the agent's.

etcd 3.4 serves its v3 API as JSON on the client port (``/v3/kv/range``,
``/v3/kv/txn``, ``/v3/watch``, ``/v3/lease/*``, ``/v3/auth/authenticate``),
over the same TLS. This adapter speaks it with the standard library's sockets
(and :mod:`ssl` only for https): importing it costs a few milliseconds where
aetcd + grpc cost ~90 ms, which is what a short-lived command pays, and ~13 MiB
of a long-lived process's memory: the agent uses it too (docs/architecture.md,
"etcd adapters"); :class:`~unitctl.registry.etcd.EtcdKV` (one gRPC channel that
multiplexes every watch) stays for the API server and the benchmarks.

How it runs: unary calls are blocking socket round trips (bounded by the
configured timeout). Driven by :func:`unitctl.registry.blocking.run_blocking`
they run inline, with no event loop; under asyncio each runs in the loop's
default executor (lease calls on a thread of their own, so a keepalive never
queues behind other calls), on a pooled connection (at most :data:`MAX_IDLE` kept idle;
one that etcd closed meanwhile is dropped before reuse), so calls in flight do
not block the loop. A watch is one streamed HTTP reply read with asyncio
streams, on a connection of its own (:mod:`unitctl.registry.gatewaywatch`), or
without an event loop on a blocking socket (:mod:`unitctl.registry.gatewayblock`).

Endpoints are tried in order; one that cannot be reached is skipped. With a
username, a token from ``/v3/auth/authenticate`` is sent on every request and
fetched again once when etcd says it expired. Errors map like EtcdKV's:
unreachable, timed out or compacted is RegistryUnavailable, the rest
RegistryError; a failed compare is ``txn() -> False``.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from unitctl.errors import ConfigError, RegistryError, RegistryUnavailable
from unitctl.record import Frozen, init
from unitctl.registry import blocking
from unitctl.registry import gatewayjson as gj
from unitctl.registry.connection import EtcdConfig
from unitctl.registry.gatewaystream import connect
from unitctl.registry.httpwire import ResponseParser, WireError, post
from unitctl.registry.kv import PAGE_KEYS, TXNS_IN_FLIGHT, Compare, Event, KeyValue, Op, Range, Txn

__all__ = ["GatewayKV"]

#: Idle connections kept for unary calls (more are opened during a burst of calls in
#: flight, up to the executor's threads, and closed after it): with its watches (one
#: connection each), what a long-lived process holds open to etcd.
MAX_IDLE = 4

class Endpoint(Frozen):
    """One etcd client URL, split."""

    __slots__ = ("host", "port", "tls")
    tls: bool
    host: str
    port: int

    def __init__(self, tls: bool, host: str, port: int) -> None:
        init(self, tls, host, port)

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        u = urllib.parse.urlsplit(url.strip() if "://" in url else f"http://{url.strip()}")
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ConfigError(f"bad etcd endpoint {url!r}: expected http(s)://HOST:PORT")
        try:
            return cls(u.scheme == "https", u.hostname, u.port or 2379)
        except ValueError as exc:
            raise ConfigError(f"bad etcd endpoint {url!r}: bad port") from exc

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _tls_context(cfg: EtcdConfig) -> Any:
    import ssl  # only for https: a plain-http command does not load it

    try:
        ctx = ssl.create_default_context(cafile=cfg.ca_file or None)
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        names = ", ".join(p for p in (cfg.ca_file, cfg.cert_file, cfg.key_file) if p)
        raise ConfigError(f"cannot read TLS files {names}: {exc}") from exc
    return ctx


class _Connection:
    """One keep-alive HTTP/1.1 connection to one endpoint (blocking)."""

    def __init__(self, ep: Endpoint, tls: Any, timeout: float) -> None:
        sock = connect(ep.host, ep.port, timeout)
        self.sock = tls.wrap_socket(sock, server_hostname=ep.host) if tls is not None else sock
        self.endpoint = ep

    def request(self, path: str, data: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        self.sock.sendall(post(self.endpoint.authority, path, data, headers))
        parser = ResponseParser()
        pieces: list[bytes] = []
        while not parser.done:
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionResetError("etcd closed the connection")
            pieces += parser.feed(chunk)
        if not parser.keep_alive:
            self.close()
        return parser.status, b"".join(pieces)

    def dropped(self) -> bool:
        """Whether etcd closed this idle connection (it restarted, or timed it out).

        An idle keep-alive connection has nothing to read: readable means EOF
        or a reset. Checked before reuse, so a request is never sent on a dead
        connection (a failure then would leave unknown whether it applied).
        """
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class GatewayKV:
    """The KV port over etcd's JSON gateway. Create with :meth:`connect`."""

    def __init__(self, cfg: EtcdConfig, endpoints: Sequence[Endpoint], tls: Any) -> None:
        self._cfg = cfg
        self._endpoints = list(endpoints)
        self._tls = tls
        self._idle: list[_Connection] = []
        self._token = ""
        self._auth_lock = threading.Lock()
        self._lease_thread: Any = None  # a ThreadPoolExecutor, made on the first lease call
        self.page_size = PAGE_KEYS

    @classmethod
    async def connect(cls, cfg: EtcdConfig) -> GatewayKV:
        """Check ``cfg`` and build the adapter (connections are opened on use)."""
        return cls.create(cfg)

    @classmethod
    def create(cls, cfg: EtcdConfig) -> GatewayKV:
        endpoints = [Endpoint.parse(e) for e in cfg.endpoints if e.strip()]
        if not endpoints:
            raise ConfigError("no etcd endpoint given")
        if len({e.tls for e in endpoints}) > 1:
            raise ConfigError("etcd endpoints mix http and https")
        if bool(cfg.username) != bool(cfg.password):
            raise ConfigError("etcd username and password must be given together")
        use_tls = endpoints[0].tls or bool(cfg.ca_file or cfg.cert_file)
        return cls(cfg, endpoints, _tls_context(cfg) if use_tls else None)

    # -- transport -------------------------------------------------------------
    def _open(self) -> _Connection:
        while True:
            try:
                conn = self._idle.pop()  # several executor threads share the pool
            except IndexError:
                break
            if not conn.dropped():
                return conn
            conn.close()
        why: Exception | None = None
        for ep in list(self._endpoints):
            try:
                conn = _Connection(ep, self._tls, self._cfg.timeout)
            except OSError as exc:
                why = exc
                self._endpoints.append(self._endpoints.pop(0))  # try the next one first
                continue
            return conn
        raise RegistryUnavailable(f"etcd unreachable: {why}")

    def _round_trip(self, path: str, data: bytes) -> tuple[int, bytes]:
        headers = {"Authorization": self._token} if self._token else {}
        conn = self._open()
        try:
            status, payload = conn.request(path, data, headers)
        except (OSError, WireError) as exc:
            conn.close()
            if isinstance(exc, TimeoutError | socket.timeout):
                raise RegistryUnavailable(f"etcd unreachable: no answer in "
                                          f"{self._cfg.timeout:g} s") from exc
            raise RegistryUnavailable(f"etcd unreachable: {exc}") from exc
        if len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:  # a burst is over: keep only a few connections open to etcd
            conn.close()
        return status, payload

    def _call_now(self, path: str, message: gj.Json) -> gj.Json:
        """One request, blocking; authenticates first (and once more on expiry)."""
        if self._cfg.username and not self._token:
            self._authenticate()
        data = gj.body(message)
        status, payload = self._round_trip(path, data)
        if status != 200 and self._cfg.username and b"invalid auth token" in payload:
            self._authenticate()
            status, payload = self._round_trip(path, data)
        if status != 200:
            raise gj.reply_error(status, payload)
        reply: gj.Json = json.loads(payload) if payload else {}
        return reply

    def _authenticate(self) -> None:
        with self._auth_lock:
            self._token = ""
            status, payload = self._round_trip("/v3/auth/authenticate", gj.body(
                {"name": self._cfg.username, "password": self._cfg.password}))
            if status != 200:
                raise gj.reply_error(status, payload)
            self._token = str(json.loads(payload).get("token") or "")

    async def _call(self, path: str, message: gj.Json) -> gj.Json:
        if blocking.active():
            return self._call_now(path, message)
        import asyncio  # under an event loop already: free

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(path), self._call_now, path, message)

    def _executor(self, path: str) -> Any:
        """Lease calls (the keepalive every TTL/8) run on a thread of their own: in
        the loop's shared executor they would queue behind other calls, each up to
        the request timeout while etcd is slow, and the lease would go unrenewed."""
        if not path.startswith("/v3/lease/"):
            return None  # the loop's default executor
        if self._lease_thread is None:
            from concurrent.futures import ThreadPoolExecutor  # loaded by asyncio already

            self._lease_thread = ThreadPoolExecutor(1, thread_name_prefix="etcd-lease")
        return self._lease_thread

    # -- the KV port -----------------------------------------------------------
    async def get(self, key: str) -> KeyValue | None:
        reply = await self._call("/v3/kv/range", gj.range_request(key.encode(), None))
        kvs = reply.get("kvs") or ()
        return gj.key_value(kvs[0]) if kvs else None

    async def get_many(self, keys: Sequence[str]) -> list[KeyValue | None]:
        if not keys:
            return []
        ops = [{"request_range": gj.range_request(k.encode(), None)} for k in keys]
        reply = await self._call("/v3/kv/txn", {"success": ops})
        found: list[KeyValue | None] = []
        for r in reply.get("responses") or ():
            kvs = (r.get("response_range") or {}).get("kvs") or ()
            found.append(gj.key_value(kvs[0]) if kvs else None)
        if len(found) != len(keys):
            raise RegistryError(f"etcd answered {len(found)} ranges for {len(keys)} keys")
        return found

    async def get_prefix(self, prefix: str) -> Range:
        start, end = prefix.encode(), gj.prefix_end(prefix.encode())
        kvs: list[KeyValue] = []
        revision = 0
        while True:
            page = await self._call("/v3/kv/range", gj.range_request(
                start, end, max(1, self.page_size), revision))
            revision = revision or gj.revision(page)
            got = [gj.key_value(kv) for kv in page.get("kvs") or ()]
            kvs += got
            if not page.get("more") or not got:
                return Range(tuple(kvs), revision)
            start = got[-1].key.encode() + b"\0"

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        msg: gj.Json = {"key": gj.b64(key.encode()), "value": gj.b64(value)}
        if lease:
            msg["lease"] = lease
        return gj.revision(await self._call("/v3/kv/put", msg))

    async def delete(self, key: str, prefix: bool = False) -> int:
        msg: gj.Json = {"key": gj.b64(key.encode())}
        if prefix:
            msg["range_end"] = gj.b64(gj.prefix_end(key.encode()))
        return gj.integer(await self._call("/v3/kv/deleterange", msg), "deleted")

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op],
                  failure: Sequence[Op] = ()) -> bool:
        reply = await self._call("/v3/kv/txn", gj.txn_request(compares, success, failure))
        return bool(reply.get("succeeded"))

    async def txn_many(self, txns: Sequence[Txn]) -> list[bool]:
        """Up to :data:`TXNS_IN_FLIGHT` at once, each on a connection of its own: in
        threads when driven without an event loop (the CLI's bulk verbs), else on
        the loop's executor."""
        if not blocking.active() or len(txns) <= 1:
            return await blocking.gather_bounded([self.txn(c, o) for c, o in txns],
                                                 TXNS_IN_FLIGHT)
        from concurrent.futures import ThreadPoolExecutor  # the bulk verbs only

        def one(txn: Txn) -> bool:
            reply = self._call_now("/v3/kv/txn", gj.txn_request(txn[0], txn[1], ()))
            return bool(reply.get("succeeded"))
        with ThreadPoolExecutor(min(TXNS_IN_FLIGHT, len(txns))) as pool:
            return list(pool.map(one, txns))

    async def grant_lease(self, ttl: int) -> int:
        return gj.integer(await self._call("/v3/lease/grant", {"TTL": ttl}), "ID")

    async def refresh_lease(self, lease: int) -> int:
        reply = await self._call("/v3/lease/keepalive", {"ID": lease})
        result = reply.get("result") or reply
        return gj.integer(result, "TTL") or -1

    async def revoke_lease(self, lease: int) -> None:
        try:
            await self._call("/v3/lease/revoke", {"ID": lease})
        except gj.GatewayError as exc:
            if exc.code != gj.NOT_FOUND:
                raise

    async def revision(self) -> int:
        reply = await self._call("/v3/kv/range", gj.range_request(b"\0unitctl-revision-probe",
                                                                  None, 1))
        return gj.revision(reply)

    def watch_prefix(self, prefix: str, start_rev: int) -> AsyncIterator[list[Event]]:
        from unitctl.registry.gatewaywatch import watch  # asyncio: only where watched

        return watch(self, prefix.encode(), start_rev)

    def watch_prefix_now(self, prefix: str,
                         created: Callable[[int], None]) -> AsyncIterator[list[Event]]:
        """A watch from etcd's current revision, which ``created`` is told once etcd
        created the watch: every change after it comes on the watch, and a read that
        starts after that call sees every change up to it (no gap, no past watch:
        etcd serves a watch from a past revision only on its next sync, up to 100 ms)."""
        from unitctl.registry.gatewaywatch import watch  # asyncio: only where watched

        return watch(self, prefix.encode(), 0, created=created)

    def watch_blocking(self, prefix: str) -> Any:
        """A :class:`~unitctl.registry.gatewayblock.BlockingWatch` of ``prefix`` from
        etcd's current revision (for a wait run without an event loop)."""
        from unitctl.registry.gatewayblock import BlockingWatch

        return BlockingWatch(self, prefix.encode())

    async def close(self) -> None:
        if self._lease_thread is not None:
            self._lease_thread.shutdown(wait=False)
            self._lease_thread = None
        while self._idle:
            self._idle.pop().close()

    # -- for the watch -----------------------------------------------------------
    @property
    def timeout(self) -> float:
        """Seconds a request (and a watch's connect and each read) may take."""
        return self._cfg.timeout

    def endpoint_failed(self, ep: Endpoint) -> None:
        """A watch could not reach ``ep``: try the next endpoint first from now on."""
        if self._endpoints and self._endpoints[0] == ep:
            self._endpoints.append(self._endpoints.pop(0))

    def forget_token(self) -> None:
        """etcd said the token expired: the next request or watch authenticates."""
        self._token = ""

    def watch_target(self) -> tuple[Endpoint, Any, dict[str, str]]:
        """Where a watch connects, its TLS context and its headers (blocking: may
        authenticate)."""
        if self._cfg.username and not self._token:
            self._authenticate()
        headers = {"Authorization": self._token} if self._token else {}
        return self._endpoints[0], self._tls, headers
