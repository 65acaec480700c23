"""A waiter's watches without an event loop: :class:`BlockingWatching`.

The waiter (:class:`unitctl.client.wait.Waiter`) is a coroutine; driven by
:func:`unitctl.registry.blocking.run_blocking`, its awaits must finish without
suspending. Here they block instead: the watches are etcd gateway watches on
blocking sockets (:mod:`unitctl.registry.gatewayblock`), a wait is a
``select`` on them up to the attempt's deadline, a pause is ``time.sleep``.
``start`` and ``load`` on the launcher's lean path wait this way and never
import asyncio.

Contract: :class:`unitctl.client.wait.Watching`'s, as
:class:`unitctl.client.watchopen.AsyncWatching` keeps it: the revision
returned is the highest of etcd's "created" replies, so a read made after
:meth:`BlockingWatching.open` returns sees every change up to it, and every
later change comes on a watch. A watch etcd does not create within
:data:`~unitctl.client.watchopen.CREATED_TIMEOUT` raises RegistryUnavailable.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from unitctl.errors import RegistryUnavailable
from unitctl.registry.gatewayblock import BlockingWatch, readable
from unitctl.registry.registry import Registry

from .wait import Relevant

#: Seconds etcd has to create the watches (as :data:`.watchopen.CREATED_TIMEOUT`).
CREATED_TIMEOUT = 10.0


class BlockingWatches:
    """Open blocking watches; :meth:`wait` reads them until a relevant batch came."""

    def __init__(self, watches: list[BlockingWatch], relevant: Relevant) -> None:
        self.watches = watches
        self.relevant = relevant
        self._broken = False

    def broken(self) -> bool:
        return self._broken

    def take(self, timeout: float) -> bool:
        """Read what comes within ``timeout``; True once a relevant batch came."""
        woke = False
        for watch in readable(self.watches, timeout):
            for batch in watch.read():
                woke = self.relevant(batch) or woke
        return woke

    async def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            while not self.take(deadline - time.monotonic()):
                if time.monotonic() >= deadline:
                    return
        except RegistryUnavailable:
            self._broken = True  # the waiter reads afresh and watches again

    async def close(self) -> None:
        for watch in self.watches:
            watch.close()


class BlockingWatching:
    """:class:`unitctl.client.wait.Watching` without an event loop (module docstring)."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    async def open(self, registry: Registry, prefixes: Sequence[str],
                   relevant: Relevant) -> tuple[BlockingWatches, int]:
        opened = BlockingWatches([], relevant)
        try:
            for prefix in prefixes:
                watch = registry.watch_blocking(prefix)
                if watch is None:
                    raise RegistryUnavailable("this etcd adapter has no blocking watch")
                opened.watches.append(watch)
            deadline = time.monotonic() + CREATED_TIMEOUT
            while any(w.created is None for w in opened.watches):
                if time.monotonic() >= deadline:
                    raise RegistryUnavailable(f"etcd did not create the watches within "
                                              f"{CREATED_TIMEOUT:g}s")
                opened.take(deadline - time.monotonic())
        except BaseException:
            await opened.close()
            raise
        return opened, max((w.created or 0 for w in opened.watches), default=0)
