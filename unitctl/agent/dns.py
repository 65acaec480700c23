"""The agent's DNS server for the cluster domain, answering from a mirror of ``services/``.

The mirror is the templates' :class:`~.templates.RootMirror` over
``<prefix>services/``: read once, then watched from the revision after the
last event seen; a watch that ends wakes the loop and is resumed from
``last + 1`` (read again only when etcd compacted that revision). Each change
rebuilds the zone (:func:`.dnszone.build_zone`), which queries read without
touching etcd: a machine cut off from etcd answers from what it last saw.

Served over UDP and TCP on ``dns_address`` (default ``127.0.0.2:53``, a
loopback address systemd-resolved's own ``127.0.0.53`` does not clash with).
An address that cannot be bound is logged, not fatal: the agent's units matter
more than its names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator
from typing import cast

import dns.name

from unitctl.loop import checkpoint
from unitctl.registry.registry import Registry

from .dnszone import Zone, build_zone, respond
from .templates import RootMirror

log = logging.getLogger("unitctl.agent.dns")


class ServiceZone:
    """The zone, kept in step with ``services/`` by a watch."""

    def __init__(self, registry: Registry, domain: dns.name.Name) -> None:
        self.store = registry.services
        self.domain = domain
        self.wake = asyncio.Event()
        self.mirror = RootMirror(registry.templates, self.store.prefix, self.wake)
        self.zone = Zone(domain)
        #: set after each rebuild (tests wait on it)
        self.rebuilt = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.mirror.run())
            while True:
                checkpoint()
                await self.wake.wait()
                self.wake.clear()
                self.zone = build_zone(self.domain, self.store.records(self.mirror.kvs))
                self.rebuilt.set()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: ServiceZone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        reply = respond(data, self.zone.zone)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def _tcp(zone: ServiceZone, reader: asyncio.StreamReader,
               writer: asyncio.StreamWriter) -> None:
    """DNS over TCP: two-byte length, message; several queries per connection."""
    try:
        while True:
            size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 10))[0]
            reply = respond(await asyncio.wait_for(reader.readexactly(size), 10), zone.zone,
                            max_size=65535)
            if reply is None:
                break
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def serving(registry: Registry, domain: dns.name.Name,
                  address: tuple[str, int]) -> AsyncIterator[ServiceZone]:
    """Answer DNS for ``domain`` on ``address`` (UDP and TCP) while the block runs."""
    zone = ServiceZone(registry, domain)
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(zone.run())
    udp: asyncio.DatagramTransport | None = None
    tcp: asyncio.Server | None = None
    try:
        udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(zone), local_addr=address)
        tcp = await asyncio.start_server(lambda r, w: _tcp(zone, r, w), *address)
        log.info("dns: answering for %s on %s:%d", domain, *address)
    except OSError as exc:
        log.error("dns: cannot listen on %s:%d: %s", *address, exc)
    try:
        yield zone
    finally:
        if udp is not None:
            udp.close()
        if tcp is not None:
            tcp.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
