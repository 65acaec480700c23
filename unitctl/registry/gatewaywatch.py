"""Watches on etcd's JSON gateway: one ``POST /v3/watch`` whose reply streams events.

Part of :mod:`unitctl.registry.gateway` that needs asyncio, kept apart so the
read paths that never watch never import it. The reply is chunked; each
message is one JSON object (``{"result": WatchResponse}``) followed by a
newline. Contract (the KV port's): batches of events from ``start_rev`` on, in
order, for ever; a lost connection, an error or a cancelled watch (compacted
history) raises RegistryUnavailable, and the caller reads again.

A watch only reads, so a dead peer (etcd's host gone, a partition, a member
restarted while the path was cut) would never show as an error: the socket
keeps TCP keepalives (:data:`KEEPALIVE`: probes after 5 s idle, every 1 s, 3
unanswered end it), as EtcdKV's gRPC channel pinged every 5 s. An expired auth
token makes the adapter authenticate again on the next watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from unitctl.errors import RegistryUnavailable
from unitctl.loop import checkpoint
from unitctl.registry import gatewayjson as gj
from unitctl.registry.httpwire import ResponseParser, WireError, post
from unitctl.registry.kv import Event

if TYPE_CHECKING:
    from unitctl.registry.gateway import GatewayKV

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


async def watch(kv: GatewayKV, key: bytes, start_rev: int, timeout: float = 5.0,
                created: Callable[[int], None] | None = None) -> AsyncIterator[list[Event]]:
    """Yield the event batches of a watch of every key under ``key``; ``created`` gets
    etcd's "created" revision (``start_rev`` 0: a synced watch from there on)."""
    loop = asyncio.get_running_loop()
    ep, tls, headers = await loop.run_in_executor(None, kv.watch_target)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            ep.host, ep.port, ssl=tls, server_hostname=ep.host if tls is not None else None),
            timeout)
    except (OSError, TimeoutError) as exc:
        kv.endpoint_failed(ep)  # the next watch (the caller retries) tries another member
        raise RegistryUnavailable(f"etcd unreachable: {exc or 'no answer'}") from exc
    try:
        checkpoint()  # wait_for (3.11) may have eaten a cancellation that came meanwhile
        keep_alive(writer.get_extra_info("socket"))
        writer.write(post(ep.authority, "/v3/watch", gj.body(gj.watch_request(key, start_rev)),
                          headers))
        parser = ResponseParser()
        pending = bytearray()
        while True:
            checkpoint()
            data = await reader.read(262144)
            if not data:
                raise RegistryUnavailable("etcd unreachable: the watch connection closed")
            pending += b"".join(parser.feed(data))
            if parser.status != 200:
                if parser.done:
                    raise _refused(kv, parser.status, bytes(pending))
                continue
            for batch in _messages(kv, pending, created):
                yield batch
            if parser.done:
                raise RegistryUnavailable("etcd unreachable: the watch ended")
    except (OSError, WireError) as exc:
        raise RegistryUnavailable(f"etcd unreachable: {exc}") from exc
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1)


def _cancelled(kv: GatewayKV, result: gj.Json) -> RegistryUnavailable:
    """Why etcd cancelled a watch: compacted history, or a token that expired
    (etcd checks it when the watch is created: the next one authenticates)."""
    reason = str(result.get("cancel_reason") or "")
    if "invalid auth token" in reason:
        kv.forget_token()
        return RegistryUnavailable("etcd watch: the auth token expired; authenticating again")
    if gj.integer(result, "compact_revision"):
        return RegistryUnavailable(f"etcd watch lost history: {reason or 'compacted'}")
    return RegistryUnavailable(f"etcd cancelled the watch: {reason or 'no reason given'}")


def _refused(kv: GatewayKV, status: int, payload: bytes) -> Exception:
    """The error of a watch etcd refused; an expired token is fetched again next time."""
    if b"invalid auth token" in payload:
        kv.forget_token()
        return RegistryUnavailable("etcd watch: the auth token expired; authenticating again")
    return gj.reply_error(status, payload)


def _messages(kv: GatewayKV, pending: bytearray,
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
            raise _cancelled(kv, result)
        if result.get("created") and created is not None:
            created(gj.revision(result))
        events = gj.events(result)
        if events:
            batches.append(events)
    return batches
