"""Blocking watches on etcd's JSON gateway: a command's wait without asyncio.

A :class:`BlockingWatch` is one ``POST /v3/watch`` from etcd's current
revision, on a blocking socket of its own; :func:`readable` waits on several
at once (``select``). The CLI's ``start``/``load`` wait with them when they run
without an event loop (:mod:`unitctl.registry.blocking`,
:mod:`unitctl.client.blockwatch`): importing asyncio costs about as much as
the rest of the command's imports.

Contract (the asyncio watch's, :mod:`unitctl.registry.gatewaywatch`): after
:attr:`BlockingWatch.created` is set (etcd's "created" revision), every change
under the prefix comes in :meth:`BlockingWatch.read`'s batches, in order; a
lost connection, an error or a cancelled watch raises RegistryUnavailable.
``read`` is called only when :func:`readable` named the watch: it reads once
(bounded by the request timeout) and returns the batches now complete, maybe
none.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Sequence
from typing import Any, Protocol

from unitctl.errors import RegistryUnavailable
from unitctl.registry import gatewayjson as gj
from unitctl.registry.gatewaystream import connect, keep_alive, messages, refused
from unitctl.registry.httpwire import ResponseParser, WireError, post
from unitctl.registry.kv import Event


class WatchSource(Protocol):
    """What a watch needs of the adapter (:class:`~unitctl.registry.gateway.GatewayKV`)."""

    @property
    def timeout(self) -> float: ...

    def watch_target(self) -> tuple[Any, Any, dict[str, str]]: ...

    def endpoint_failed(self, ep: Any) -> None: ...

    def forget_token(self) -> None: ...


class BlockingWatch:
    """One watch of every key under a prefix, from etcd's current revision."""

    def __init__(self, kv: WatchSource, prefix: bytes) -> None:
        ep, tls, headers = kv.watch_target()
        self.kv = kv
        #: etcd's revision in its "created" reply; None until it came
        self.created: int | None = None
        self._parser = ResponseParser()
        self._pending = bytearray()
        try:
            sock = connect(ep.host, ep.port, kv.timeout)
        except OSError as exc:
            kv.endpoint_failed(ep)
            raise RegistryUnavailable(f"etcd unreachable: {exc or 'no answer'}") from exc
        self.sock = sock
        try:
            if tls:  # the wrapped socket takes the plain one's place (and its descriptor)
                self.sock = tls.wrap_socket(sock, server_hostname=ep.host)
            keep_alive(self.sock)
            self.sock.sendall(post(ep.authority, "/v3/watch",
                                   gj.body(gj.watch_request(prefix, 0)), headers))
        except OSError as exc:
            self.close()
            sock.close()
            raise RegistryUnavailable(f"etcd unreachable: {exc}") from exc

    def fileno(self) -> int:
        return self.sock.fileno()

    def buffered(self) -> bool:
        """TLS bytes already read off the socket and not yet returned (select misses them)."""
        pending = getattr(self.sock, "pending", None)
        return bool(pending and pending())

    def read(self) -> list[list[Event]]:
        """Read once; the event batches now complete (see the module docstring)."""
        try:
            data = self.sock.recv(262144)
            if not data:
                raise RegistryUnavailable("etcd unreachable: the watch connection closed")
            self._pending += b"".join(self._parser.feed(data))
        except (OSError, WireError) as exc:
            raise RegistryUnavailable(f"etcd unreachable: {exc}") from exc
        if self._parser.status != 200:
            if self._parser.done:
                raise refused(self.kv, self._parser.status, bytes(self._pending))
            return []
        batches = messages(self.kv, self._pending, self._created)
        if self._parser.done:
            raise RegistryUnavailable("etcd unreachable: the watch ended")
        return batches

    def _created(self, revision: int) -> None:
        if self.created is None:
            self.created = revision

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def readable(watches: Sequence[BlockingWatch], timeout: float) -> list[BlockingWatch]:
    """The watches with bytes to read, waiting up to ``timeout`` seconds for one."""
    ready = [w for w in watches if w.buffered()]
    if ready or not watches:
        return ready
    try:
        got, _, _ = select.select(list(watches), [], [], max(0.0, timeout))
    except (OSError, ValueError) as exc:  # a socket closed under us
        raise RegistryUnavailable(f"etcd unreachable: {exc}") from exc
    return list(got)
