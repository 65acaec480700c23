"""The agent's session: this machine's registration under a lease, kept alive.

Contract:

* the machine key lives under one lease of ``ttl`` seconds (the registry's
  :class:`~unitctl.registry.leases.Leases` port), refreshed every
  :attr:`Session.keepalive` seconds, so an etcd outage shorter than
  ``ttl - keepalive`` never expires it;
* a refresh that fails, or is not answered within :attr:`Session.retry`
  seconds, is followed by another that soon (earlier attempts keep running, at
  most :data:`MAX_ATTEMPTS`: a slow answer still counts), so while etcd answers
  one refresh in ``ttl - keepalive`` the lease never expires;
* :meth:`Session.lease_age` counts from the *sending* of the last refresh etcd
  answered (the lease cannot expire sooner than ``ttl`` after it): the fence's
  clock;
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

from .fencing import keepalive_interval, retry_interval

log = logging.getLogger("unitctl.agent")

#: The most refreshes of the lease in flight at once: one slow or lost answer
#: does not hold the next attempt back, and a saturated client or etcd gets at
#: most twice its keepalives.
MAX_ATTEMPTS = 2


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
        #: When the last refresh that etcd answered with a live lease (or the grant) was sent.
        self.last_renewal = self.last_contact
        #: The cluster's peer secret (:mod:`.peerauth`), read at each registration;
        #: empty until the first one.
        self.peer_secret = b""

    @property
    def keepalive(self) -> float:
        """Seconds between keepalives: an etcd outage shorter than ttl - keepalive
        can never expire the lease."""
        return keepalive_interval(self.ttl)

    @property
    def retry(self) -> float:
        """Seconds between attempts to refresh the lease while none has answered."""
        return retry_interval(self.ttl)

    def etcd_age(self) -> float:
        """Seconds since this agent last reached etcd."""
        return self.clock() - self.last_contact

    def lease_age(self) -> float:
        """Seconds since the sending of the last refresh etcd answered (or of the grant)."""
        return self.clock() - self.last_renewal

    def renewed(self, sent: float) -> None:
        """etcd answered a refresh (or grant) sent at ``sent``: the lease lives on."""
        self.last_renewal = max(self.last_renewal, sent)
        self.contact()

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
                if await self.renew() <= 0:
                    log.warning("agent: lease %x expired; registering again", self.lease)
                    self.lease = 0
                    continue
            except ConflictError as exc:
                log.error("agent: %s", exc)
                self.notify(f"STATUS={exc}")
            except RegistryError as exc:
                log.warning("agent: registration failed: %s", exc)
                await asyncio.sleep(self.retry)
                continue
            await asyncio.sleep(self.keepalive)

    async def renew(self) -> int:
        """Refresh the lease until etcd answers; its TTL (``<= 0``: it expired).

        A new attempt goes out every :attr:`retry` seconds while none has
        answered; the earlier ones keep running (at most :data:`MAX_ATTEMPTS`).
        """
        running: dict[asyncio.Task[int], float] = {}
        failures = 0
        try:
            while True:
                if len(running) < MAX_ATTEMPTS:
                    attempt = asyncio.create_task(self.registry.leases.refresh(self.lease))
                    running[attempt] = self.clock()
                done, _ = await asyncio.wait(running, timeout=self.retry,
                                             return_when=asyncio.FIRST_COMPLETED)
                for attempt in done:
                    sent = running.pop(attempt)
                    exc = attempt.exception()
                    if exc is None:
                        return self._answered(attempt.result(), sent)
                    if not isinstance(exc, RegistryError):
                        raise exc
                    failures += 1
                    if failures == 1:
                        log.warning("agent: keepalive failed: %s; retrying every %gs", exc,
                                    self.retry)
                if done:  # a quick failure: wait out the retry interval before the next
                    await asyncio.sleep(self.retry)
        finally:
            for attempt in running:
                if attempt.done() and not attempt.cancelled():
                    attempt.exception()  # retrieved: a late failure is no news
                attempt.cancel()

    def _answered(self, ttl: int, sent: float) -> int:
        if ttl > 0:
            self.renewed(sent)
        else:
            self.contact()
        return ttl

    async def reaches_etcd(self, timeout: float) -> bool:
        """One quick look at etcd within ``timeout``: a refresh of the lease (or, with no
        lease, a read). True if etcd answered."""
        sent = self.clock()
        try:
            if self.lease:
                self._answered(await asyncio.wait_for(
                    self.registry.leases.refresh(self.lease), timeout), sent)
            else:
                await asyncio.wait_for(self.registry.revision(), timeout)
                self.contact()
        except (TimeoutError, RegistryError):
            return False
        return True

    async def _register(self) -> None:
        sent = self.clock()
        self.peer_secret = await self.registry.peer_secret()
        lease = await self._previous_lease() or await self.registry.leases.grant(self.ttl)
        await self.registry.register_machine(self.machine, lease)
        self.lease = lease
        self._save_lease(lease)
        self.renewed(sent)
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
            if await self.renew() <= 0:
                log.error("agent: lease %x expired while the units were stopping", self.lease)
                return
            await asyncio.sleep(self.keepalive)

    async def end(self) -> None:
        """Leave: revoke the lease (the machine key and states go with it), drop the file."""
        if self.lease:
            with contextlib.suppress(UnitctlError):
                await self.registry.leases.revoke(self.lease)
        if self.lease_file:
            with contextlib.suppress(OSError):
                os.remove(self.lease_file)
