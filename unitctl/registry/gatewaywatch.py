"""Watches on etcd's JSON gateway: one ``POST /v3/watch`` whose reply streams events.

Part of :mod:`unitctl.registry.gateway` that needs asyncio, kept apart so the
read paths that never watch never import it. The reply is chunked; each
message is one JSON object (``{"result": WatchResponse}``) followed by a
newline. Contract (the KV port's): batches of events from ``start_rev`` on, in
order, for ever; a lost connection, an error or a cancelled watch (compacted
history) raises RegistryUnavailable, and the caller reads again.

The socket keeps TCP keepalives and the stream's messages are taken apart by
:mod:`unitctl.registry.gatewaystream` (shared with the blocking watch of
:mod:`unitctl.registry.gatewayblock`). An expired auth token makes the adapter
authenticate again on the next watch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from unitctl.errors import RegistryUnavailable
from unitctl.loop import checkpoint
from unitctl.registry import gatewayjson as gj
from unitctl.registry.gatewaystream import keep_alive, messages, refused
from unitctl.registry.httpwire import ResponseParser, WireError, post
from unitctl.registry.kv import Event

if TYPE_CHECKING:
    from unitctl.registry.gateway import GatewayKV

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
                    raise refused(kv, parser.status, bytes(pending))
                continue
            for batch in messages(kv, pending, created):
                yield batch
            if parser.done:
                raise RegistryUnavailable("etcd unreachable: the watch ended")
    except (OSError, WireError) as exc:
        raise RegistryUnavailable(f"etcd unreachable: {exc}") from exc
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1)
