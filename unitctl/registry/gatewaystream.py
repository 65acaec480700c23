"""The streamed reply of a watch on etcd's JSON gateway, without I/O and without asyncio.

Shared by the asyncio watch (:mod:`unitctl.registry.gatewaywatch`) and the
blocking one (:mod:`unitctl.registry.gatewayblock`). The reply is chunked; each
message is one JSON object (``{"result": WatchResponse}``) followed by a
newline: :func:`messages` takes the complete ones off a buffer. A cancelled
watch (compacted history, an expired token) or an error message raises
RegistryUnavailable, and the caller reads again.

A watch only reads, so a dead peer (etcd's host gone, a partition, a member
restarted while the path was cut) would never show as an error: the socket
keeps TCP keepalives (:data:`KEEPALIVE`: probes after 5 s idle, every 1 s, 3
unanswered end it), as EtcdKV's gRPC channel pinged every 5 s. :func:`connect`
opens the adapter's connections, unary and watch alike.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Protocol

from unitctl.errors import RegistryUnavailable
from unitctl.registry import gatewayjson as gj
from unitctl.registry.kv import Event


class TokenHolder(Protocol):
    """The adapter's side of an expired token (:meth:`GatewayKV.forget_token`)."""

    def forget_token(self) -> None: ...


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``host``:``port`` within ``timeout`` (raises OSError).

    An IP address is connected to directly: ``socket.create_connection`` asks
    ``getaddrinfo`` even for one, and its first call in a process (the resolver's
    set-up) cost 2-3 ms of every command's first request.
    """
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection((host, port), timeout=timeout)


#: (idle seconds before the first probe, seconds between probes, probes unanswered)
KEEPALIVE = (5, 1, 3)


def keep_alive(sock: socket.socket | None) -> None:
    """Turn on TCP keepalives on a watch's socket (see the module docstring)."""
    if sock is None:
        return
    idle, interval, count = KEEPALIVE
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval),
                        ("TCP_KEEPCNT", count)):
        if hasattr(socket, name):  # Linux; elsewhere the system's defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def cancelled(kv: TokenHolder, result: gj.Json) -> RegistryUnavailable:
    """Why etcd cancelled a watch: compacted history, or a token that expired
    (etcd checks it when the watch is created: the next one authenticates)."""
    reason = str(result.get("cancel_reason") or "")
    if "invalid auth token" in reason:
        kv.forget_token()
        return RegistryUnavailable("etcd watch: the auth token expired; authenticating again")
    if gj.integer(result, "compact_revision"):
        return RegistryUnavailable(f"etcd watch lost history: {reason or 'compacted'}")
    return RegistryUnavailable(f"etcd cancelled the watch: {reason or 'no reason given'}")


def refused(kv: TokenHolder, status: int, payload: bytes) -> Exception:
    """The error of a watch etcd refused; an expired token is fetched again next time."""
    if b"invalid auth token" in payload:
        kv.forget_token()
        return RegistryUnavailable("etcd watch: the auth token expired; authenticating again")
    return gj.reply_error(status, payload)


def messages(kv: TokenHolder, pending: bytearray,
              created: Callable[[int], None] | None = None) -> list[list[Event]]:
    """Take every complete message off ``pending``; return their event batches (and
    pass the revision of a "created" reply to ``created``)."""
    batches = []
    while (end := pending.find(b"\n")) >= 0:
        line = bytes(pending[:end]).strip()
        del pending[:end + 1]
        if not line:
            continue
        msg = json.loads(line)
        if "error" in msg:
            raise RegistryUnavailable(f"etcd watch failed: {msg['error']}")
        result = msg.get("result") or {}
        if result.get("canceled") or gj.integer(result, "compact_revision"):
            raise cancelled(kv, result)
        if result.get("created") and created is not None:
            created(gj.revision(result))
        events = gj.events(result)
        if events:
            batches.append(events)
    return batches
