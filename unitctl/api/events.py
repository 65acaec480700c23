"""``GET /unitctl/v1/events``: Server-Sent Events of unit, state, placement and machine changes.

One event per changed key, from a registry watch of the prefix::

    id: <etcd revision>
    event: unit | state | placement | machine | explain | metadata
    data: {"kind": "put"|"delete", "name": ..., "machine": ..., "value": {...}}

The stream starts at the current revision, or just after ``Last-Event-ID``
(a client that reconnects misses nothing the store still has). A watch that
ends (etcd restarted, connection lost) is resumed from the last revision
seen; if that revision was compacted meanwhile, a ``resync`` event says so
(the client should read the lists again) and the stream goes on from now. A
comment line every :data:`KEEPALIVE` seconds keeps proxies from closing an
idle stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web

from unitctl.api import wire
from unitctl.api.context import ctx
from unitctl.api.routes import READ, Route
from unitctl.errors import RegistryError
from unitctl.model import Machine, UnitRecord, UnitState
from unitctl.registry.keyspace import Entity, Record
from unitctl.registry.kv import Event
from unitctl.registry.registry import Registry

log = logging.getLogger("unitctl.api")
KEEPALIVE = 15.0
RETRY_PAUSE = 1.0
EVENT_NAMES = {Entity.UNIT: "unit", Entity.STATE: "state", Entity.PLACEMENT: "placement",
               Entity.MACHINE: "machine", Entity.EXPLANATION: "explain",
               Entity.METADATA: "metadata"}


def _value(rec: Record) -> Any:
    v = rec.value
    if isinstance(v, UnitRecord):
        return {"hash": v.hash, "desired": v.desired.value}
    if isinstance(v, UnitState):
        return wire.state_json(v)
    if isinstance(v, Machine):
        return wire.machine_json(v)
    return v


def event_text(rec: Record) -> str | None:
    """The SSE text of one decoded key change, or None for keys not streamed."""
    name = EVENT_NAMES.get(rec.ref.entity)
    if name is None:
        return None
    data = {"kind": "delete" if rec.value is None else "put", "name": rec.ref.name,
            "machine": rec.ref.machine, "value": _value(rec)}
    return f"id: {rec.mod_rev}\nevent: {name}\ndata: {json.dumps(data)}\n\n"


async def changes(registry: Registry, start: int) -> AsyncGenerator[str, None]:
    """SSE texts of every change from revision ``start`` on, resuming ended watches."""
    while True:
        try:
            async for events in registry.watch(registry.keys.prefix, start):
                for ev in events:
                    start = max(start, ev.mod_rev + 1)
                    text = _decode(registry, ev)
                    if text is not None:
                        yield text
            log.info("events: watch ended at revision %d; resuming", start)
        except RegistryError as exc:  # unreachable or compacted: resume
            log.warning("events: watch failed (%s); resuming", exc)
            await asyncio.sleep(RETRY_PAUSE)
            try:
                now = await registry.revision()
            except RegistryError:
                continue
            if "compact" in str(exc).lower():
                yield f"event: resync\ndata: {json.dumps({'revision': now})}\n\n"
                start = now + 1


def _decode(registry: Registry, ev: Event) -> str | None:
    try:
        rec = registry.keyspace.decode_event(ev)
    except RegistryError:
        return None  # a bad value is not streamed (the lists report it)
    return None if rec is None else event_text(rec)


def _start(request: web.Request) -> int | None:
    last = request.headers.get("Last-Event-ID", "")
    return int(last) + 1 if last.isdigit() else None


async def events(request: web.Request) -> web.StreamResponse:
    registry = ctx(request).registry
    start = _start(request) or await registry.revision() + 1
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    await response.write(b": unitctl events\n\n")
    stream = changes(registry, start)
    pending: asyncio.Task[str] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(stream))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE)
            if not done:
                await response.write(b": keepalive\n\n")
                continue
            text, pending = pending.result(), None
            await response.write(text.encode())
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait({pending})  # the generator must stop running before aclose
        await stream.aclose()


ROUTES = (Route("GET", "/unitctl/v1/events", READ, events),)
