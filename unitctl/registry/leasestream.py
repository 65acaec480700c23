"""Lease keepalives on long-lived streams: at most a few per client, kept open.

etcd's ``LeaseKeepAlive`` is a bidirectional stream: each request names a lease
and etcd answers each with that lease's ID and its TTL (0 when the lease is
gone), in the order the requests came. aetcd's ``refresh_lease`` opens a new
stream for every refresh and drops it after one reply: a stream set-up per
keepalive, for the client and for etcd.

Why not one stream for all of a client's leases, as etcd's Go client keeps:
etcd answers a stream's requests one after another, and renewing a lease that
has expired but is not yet revoked waits until etcd has revoked it. One dead
lease would hold every other lease's keepalive behind it. Nor one stream per
lease without bound: each open stream takes an HTTP/2 stream slot of the
connection. :class:`LeaseKeepalives` spreads a client's leases over at most
:data:`MAX_STREAMS` streams by lease ID (an agent has one lease: one stream).

The contract of :meth:`KeepaliveStream.refresh`:

* it returns the TTL etcd answered for this request (<= 0: the lease is gone);
* replies are matched to requests by lease ID, first come first served among
  the requests of one lease;
* when the stream fails or closes, every refresh waiting on it raises (the
  stream's error, or :class:`ConnectionError` for a clean close) and the next
  refresh opens a new stream;
* a refresh with no reply within ``timeout`` raises :class:`TimeoutError` and
  drops the stream (a stream that answers nobody is not trusted again), so the
  waiting refreshes of other leases raise too and their callers retry;
* a refresh cancelled by its caller only withdraws itself.

No I/O library is imported here: the adapter passes the function that opens the
stream and the one that builds a request (:class:`unitctl.registry.etcd.EtcdKV`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

#: Opens the stream: given the requests to send, the replies (each with ``ID`` and ``TTL``).
OpenStream = Callable[[AsyncIterator[Any]], AsyncIterator[Any]]


class KeepaliveStream:
    """Lease refreshes on one stream, matched to replies by lease ID (see the module
    docstring; :class:`LeaseKeepalives` keeps one per lease)."""

    def __init__(self, open_stream: OpenStream, request: Callable[[int], Any],
                 timeout: float) -> None:
        self._open = open_stream
        self._request = request
        self._timeout = timeout
        self._outbox: asyncio.Queue[Any] | None = None
        self._waiting: dict[int, deque[asyncio.Future[int]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.opened = 0  #: streams opened so far (for tests and benchmarks)

    async def refresh(self, lease: int) -> int:
        """Send one keepalive of ``lease``; the TTL etcd answers (<= 0: gone)."""
        outbox = self._ensure_open()
        reply: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(lease, deque())
        waiting.append(reply)
        outbox.put_nowait(self._request(lease))
        try:
            done, _ = await asyncio.wait({reply}, timeout=self._timeout)
        finally:
            if not reply.done():
                self._withdraw(lease, reply)
        if not done:
            self.reset(TimeoutError(f"no keepalive reply in {self._timeout:g} s"))
            raise TimeoutError(f"etcd did not answer a lease keepalive in {self._timeout:g} s")
        return reply.result()

    def _ensure_open(self) -> asyncio.Queue[Any]:
        if self._outbox is None or self._reader is None or self._reader.done():
            outbox: asyncio.Queue[Any] = asyncio.Queue()
            self._outbox = outbox
            self._reader = asyncio.create_task(self._read(outbox), name="lease-keepalive")
            self.opened += 1
        return self._outbox

    async def _read(self, outbox: asyncio.Queue[Any]) -> None:
        """Match each reply to the oldest waiting refresh of its lease until the
        stream ends; then fail whoever still waits on it."""
        error: BaseException = ConnectionError("etcd closed the lease keepalive stream")
        try:
            async for reply in self._open(_drain(outbox)):
                self._answer(int(reply.ID), int(reply.TTL))
        except asyncio.CancelledError:
            error = ConnectionError("the lease keepalive stream was dropped")
            raise
        except Exception as exc:  # the stream's end, handed to every waiter
            error = exc
        finally:
            if self._outbox is outbox:
                self._outbox = None
                self._fail_all(error)

    def _answer(self, lease: int, ttl: int) -> None:
        waiting = self._waiting.get(lease)
        while waiting:
            reply = waiting.popleft()
            if not reply.done():
                reply.set_result(ttl)
                break
        if not waiting:
            self._waiting.pop(lease, None)

    def _withdraw(self, lease: int, reply: asyncio.Future[int]) -> None:
        waiting = self._waiting.get(lease)
        if waiting is not None:
            with contextlib.suppress(ValueError):
                waiting.remove(reply)
            if not waiting:
                self._waiting.pop(lease, None)

    def _fail_all(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, {}
        for replies in waiting.values():
            for reply in replies:
                if not reply.done():
                    reply.set_exception(error)

    def reset(self, error: BaseException | None = None) -> None:
        """Drop the stream: its waiting refreshes raise ``error``; the next opens anew."""
        reader, self._reader, self._outbox = self._reader, None, None
        self._fail_all(error or ConnectionError("the lease keepalive stream was dropped"))
        if reader is not None and not reader.done():
            reader.cancel()

    async def close(self) -> None:
        """Drop the stream and wait for its reader to end."""
        reader = self._reader
        self.reset()
        if reader is not None:
            with contextlib.suppress(BaseException):
                await reader


#: Streams per client at most; a lease's stream is its ID modulo this. Every open
#: stream holds one of the HTTP/2 connection's stream slots: with 1,000 leases on
#: 1,000 streams per client (``bench/etcd_scale.py`` at 5,000 agents) the clients
#: stalled and every lease expired (which limit was reached was not isolated).
MAX_STREAMS = 16


class LeaseKeepalives:
    """Keepalive streams for many leases: lease ID modulo :data:`MAX_STREAMS` picks
    the stream (one agent, one lease, one stream), so one dead lease holds back only
    the leases of its stream. Streams stay open until :meth:`close`; a broken one
    reopens at the next refresh."""

    def __init__(self, open_stream: OpenStream, request: Callable[[int], Any],
                 timeout: float, max_streams: int = MAX_STREAMS) -> None:
        self._open = open_stream
        self._request = request
        self._timeout = timeout
        self._max = max_streams
        self._streams: dict[int, KeepaliveStream] = {}

    @property
    def opened(self) -> int:
        """Streams opened so far (for tests and benchmarks)."""
        return sum(s.opened for s in self._streams.values())

    async def refresh(self, lease: int) -> int:
        """One keepalive of ``lease`` on its stream; the TTL etcd answers (<= 0: gone)."""
        slot = lease % self._max
        stream = self._streams.get(slot)
        if stream is None:
            stream = self._streams[slot] = KeepaliveStream(self._open, self._request,
                                                           self._timeout)
        return await stream.refresh(lease)

    async def close(self) -> None:
        """Close every stream."""
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            await stream.close()


async def _drain(outbox: asyncio.Queue[Any]) -> AsyncIterator[Any]:
    """The stream's requests: whatever refreshes put in ``outbox``, as they come."""
    while True:
        yield await outbox.get()
