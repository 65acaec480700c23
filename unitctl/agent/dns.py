"""The agent's DNS server for the cluster domain, answering from a mirror of ``services/``.

The mirror is a :class:`~.rootmirror.RootMirror` (as the templates') over
``<prefix>services/``: read once, then watched from the revision after the
last event seen; a watch that ends wakes the loop and is resumed from
``last + 1`` (read again only when etcd compacted that revision). Each change
keeps the service records; the first query after it builds the zone from them
(:func:`.dnszone.build_zone`), which queries read without touching etcd: a
machine cut off from etcd answers from what it last saw.

dnspython (:mod:`.dnszone`) is imported by the first query, not at start: the
sockets are bound at start, and an agent nobody asks pays nothing for it.

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
from typing import TYPE_CHECKING, cast

from unitctl.loop import checkpoint
from unitctl.registry.registry import Registry
from unitctl.registry.services import ServiceRecord

from .rootmirror import RootMirror

if TYPE_CHECKING:  # dnspython is imported by the first query (start-up cost)
    from .dnszone import Zone

log = logging.getLogger("unitctl.agent.dns")


class ServiceZone:
    """The zone, kept in step with ``services/`` by a watch.

    ``domain`` is absolute text (``"unitctl."``, :func:`.dnslabels.parse_domain_text`).
    """

    def __init__(self, registry: Registry, domain: str) -> None:
        self.store = registry.services
        self.domain = domain
        self.wake = asyncio.Event()
        self.mirror = RootMirror(registry.templates, self.store.prefix, self.wake)
        self.records: list[ServiceRecord] = []
        self._zone: Zone | None = None  # built by the first query after a change
        #: set after each change is read (tests wait on it)
        self.rebuilt = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.mirror.run())
            while True:
                checkpoint()
                await self.wake.wait()
                self.wake.clear()
                self.records = self.store.records(self.mirror.kvs)
                self._zone = None
                self.rebuilt.set()

    @property
    def zone(self) -> Zone:
        """The :class:`.dnszone.Zone` of the records last read."""
        if self._zone is None:
            from .dnszone import build_zone, parse_domain  # dnspython: at the first query

            self._zone = build_zone(parse_domain(self.domain), self.records)
        return self._zone

    def respond(self, wire: bytes, max_size: int = 512) -> bytes | None:
        """:func:`.dnszone.respond` to a query, from the zone."""
        from .dnszone import respond  # dnspython: at the first query

        return respond(wire, self.zone, max_size)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: ServiceZone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        reply = self.zone.respond(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def _tcp(zone: ServiceZone, reader: asyncio.StreamReader,
               writer: asyncio.StreamWriter) -> None:
    """DNS over TCP: two-byte length, message; several queries per connection."""
    try:
        while True:
            size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 10))[0]
            reply = zone.respond(await asyncio.wait_for(reader.readexactly(size), 10),
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
async def serving(registry: Registry, domain: str,
                  address: tuple[str, int]) -> AsyncIterator[ServiceZone]:
    """Answer DNS for ``domain`` (absolute text, ``"unitctl."``) on ``address`` (UDP
    and TCP) while the block runs."""
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
