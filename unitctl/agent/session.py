"""The agent's session: this machine's registration under a lease, kept alive.

Contract:

* the machine key lives under one lease of ``ttl`` seconds (the registry's
  :class:`~unitctl.registry.leases.Leases` port), refreshed every
  :attr:`Session.keepalive` seconds, so an etcd outage shorter than
  ``ttl - keepalive`` never expires it;
* a refresh that reports the lease expired (TTL <= 0) registers again, under
  a new lease; a previous agent process's live lease (kept in the lease file)
  is adopted instead of granted, so a restart does not wait for an expiry;
* each registration first reads the cluster's peer secret (created if absent,
  :meth:`unitctl.registry.registry.Registry.peer_secret`), which authenticates the peer protocol;
* every successful exchange with etcd is a *contact* (:meth:`Session.contact`):
  :meth:`Session.etcd_age` is the time since the last one, which the fence reads;
* after each registration ``on_registered(lease)`` runs (publish states, restart
  the engine, reconcile);
* while the agent stops gracefully, :meth:`Session.hold` only refreshes the
  lease (no new registration), and :meth:`Session.end` revokes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable

from unitctl.atomicfile import atomic_write
from unitctl.errors import ConflictError, RegistryError, UnitctlError
from unitctl.loop import checkpoint
from unitctl.model import Machine
from unitctl.registry.registry import Registry

from .fencing import keepalive_interval

log = logging.getLogger("unitctl.agent")


class Session:
    """One machine's lease and registration; :meth:`run` keeps them alive."""

    def __init__(self, registry: Registry, machine: Machine, ttl: int, lease_file: str,
                 clock: Callable[[], float], notify: Callable[[str], None],
                 on_registered: Callable[[int], Awaitable[None]],
                 on_contact: Callable[[], None]) -> None:
        self.registry = registry
        self.machine = machine
        self.ttl = ttl
        #: Where the lease id is kept ("" = nowhere).
        self.lease_file = lease_file
        self.clock = clock
        self.notify = notify
        self.on_registered = on_registered
        self.on_contact = on_contact
        #: The current lease id; 0 while unregistered.
        self.lease = 0
        self.last_contact = clock()
        #: The cluster's peer secret (:mod:`.peerauth`), read at each registration;
        #: empty until the first one.
        self.peer_secret = b""

    @property
    def keepalive(self) -> float:
        """Seconds between keepalives: an etcd outage shorter than ttl - keepalive
        can never expire the lease."""
        return keepalive_interval(self.ttl)

    def etcd_age(self) -> float:
        """Seconds since this agent last reached etcd."""
        return self.clock() - self.last_contact

    def contact(self) -> None:
        """Record that etcd answered just now."""
        self.last_contact = self.clock()
        self.on_contact()

    async def run(self) -> None:
        """Register, then refresh the lease forever (registering again after an expiry)."""
        while True:
            checkpoint()
            try:
                if not self.lease:
                    await self._register()
                ttl = await self.registry.leases.refresh(self.lease)
                if ttl <= 0:
                    log.warning("agent: lease %x expired; registering again", self.lease)
                    self.lease = 0
                    continue
                self.contact()
            except ConflictError as exc:
                log.error("agent: %s", exc)
                self.notify(f"STATUS={exc}")
            except RegistryError as exc:
                log.warning("agent: keepalive failed: %s", exc)
            await asyncio.sleep(self.keepalive)

    async def _register(self) -> None:
        self.peer_secret = await self.registry.peer_secret()
        lease = await self._previous_lease() or await self.registry.leases.grant(self.ttl)
        await self.registry.register_machine(self.machine, lease)
        self.lease = lease
        self._save_lease(lease)
        self.contact()
        log.info("agent: registered machine %s (lease %x, ttl %ds)", self.machine.id, lease,
                 self.ttl)
        await self.on_registered(lease)

    async def _previous_lease(self) -> int:
        """The lease a previous agent process on this machine left alive, or 0."""
        if not self.lease_file:
            return 0
        try:
            with open(self.lease_file, encoding="ascii") as f:
                lease = int(f.read().strip(), 16)
        except (OSError, ValueError):
            return 0
        return lease if await self.registry.leases.refresh(lease) > 0 else 0

    def _save_lease(self, lease: int) -> None:
        if not self.lease_file:
            return
        with contextlib.suppress(OSError):
            # /run does not outlive a reboot, nor need the lease survive one: no fsync.
            atomic_write(self.lease_file, f"{lease:x}\n", durable=False, make_dirs=True)

    async def hold(self) -> None:
        """Keep the current lease alive until cancelled, never registering again.

        The graceful stop's keepalive: the engine must not move this machine's
        units while they are still stopping here.
        """
        while self.lease:
            checkpoint()
            try:
                if await self.registry.leases.refresh(self.lease) <= 0:
                    log.error("agent: lease %x expired while the units were stopping",
                              self.lease)
                    return
                self.contact()
            except RegistryError as exc:
                log.warning("agent: keepalive failed while stopping: %s", exc)
            await asyncio.sleep(self.keepalive)

    async def end(self) -> None:
        """Leave: revoke the lease (the machine key and states go with it), drop the file."""
        if self.lease:
            with contextlib.suppress(UnitctlError):
                await self.registry.leases.revoke(self.lease)
        if self.lease_file:
            with contextlib.suppress(OSError):
                os.remove(self.lease_file)
