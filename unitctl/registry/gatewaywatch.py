"""Watches on etcd's JSON gateway: one ``POST /v3/watch`` whose reply streams events.

Part of :mod:`unitctl.registry.gateway` that needs asyncio, kept apart so the
read paths that never watch never import it. The reply is chunked; each
message is one JSON object (``{"result": WatchResponse}``) followed by a
newline. Contract (the KV port's): batches of events from ``start_rev`` on, in
order, for ever; a lost connection, an error or a cancelled watch (compacted
history) raises RegistryUnavailable, and the caller reads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from unitctl.errors import RegistryUnavailable
from unitctl.loop import checkpoint
from unitctl.registry import gatewayjson as gj
from unitctl.registry.httpwire import ResponseParser, WireError, post
from unitctl.registry.kv import Event

if TYPE_CHECKING:
    from unitctl.registry.gateway import GatewayKV


async def watch(kv: GatewayKV, key: bytes, start_rev: int,
                timeout: float = 5.0) -> AsyncIterator[list[Event]]:
    """Yield the event batches of a watch of every key under ``key``."""
    loop = asyncio.get_running_loop()
    ep, tls, headers = await loop.run_in_executor(None, kv.watch_target)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            ep.host, ep.port, ssl=tls, server_hostname=ep.host if tls is not None else None),
            timeout)
    except (OSError, TimeoutError) as exc:
        raise RegistryUnavailable(f"etcd unreachable: {exc or 'no answer'}") from exc
    try:
        checkpoint()  # wait_for (3.11) may have eaten a cancellation that came meanwhile
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
                    raise gj.reply_error(parser.status, bytes(pending))
                continue
            for batch in _messages(pending):
                yield batch
            if parser.done:
                raise RegistryUnavailable("etcd unreachable: the watch ended")
    except (OSError, WireError) as exc:
        raise RegistryUnavailable(f"etcd unreachable: {exc}") from exc
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1)


def _messages(pending: bytearray) -> list[list[Event]]:
    """Take every complete message off ``pending``; return their event batches."""
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
            raise RegistryUnavailable("etcd watch lost history: "
                                      f"{result.get('cancel_reason') or 'compacted'}")
        events = gj.events(result)
        if events:
            batches.append(events)
    return batches
